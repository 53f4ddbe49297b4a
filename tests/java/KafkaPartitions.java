// Kafka's own default partitioner arithmetic, as reference for tests/unit/test_partitioning.py:
// for each hex-encoded key on stdin, the partition among each count given as an argument.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.HexFormat;
import org.apache.kafka.common.utils.Utils;

public class KafkaPartitions {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        StringBuilder out = new StringBuilder();
        for (String line = in.readLine(); line != null; line = in.readLine()) {
            byte[] key = HexFormat.of().parseHex(line.trim());
            for (int i = 0; i < args.length; i++) {
                int partitions = Integer.parseInt(args[i]);
                out.append(i == 0 ? "" : " ").append(Utils.toPositive(Utils.murmur2(key)) % partitions);
            }
            out.append('\n');
        }
        System.out.print(out);
    }
}
