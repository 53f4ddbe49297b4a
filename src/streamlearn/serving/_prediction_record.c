/* The variable part of a PredictionServed record as Avro binary, compiled.
 *
 * streamlearn/serving/prediction_codec.py encodes a prediction's telemetry record; its
 * pure-Python loop over the features was the largest part the worker's telemetry cost per
 * request (~4 us of a ~82 us single-prediction request, docs/serving.md). This module does
 * the same loop in C: the caller hands it the record's parts that vary from one prediction
 * to the next (request id, user id, features, context, score) and the encoded bytes of the
 * parts it caches (the frame header, the route, the outcome, the tail), and gets the framed
 * record back.
 *
 * It writes exactly what the pure-Python encoder writes (prediction_codec.encode_record_py),
 * and raises what it raises: TypeError for a feature value of a type the schema's union has
 * no branch for (exact types, as the Python code compares classes), OverflowError for an
 * integer beyond 64 bits, UnicodeEncodeError for a string that is not valid UTF-8 (a lone
 * surrogate). tests/unit/test_serving_codec.py checks both encoders against fastavro.
 *
 * Avro binary: a long is a zig-zag varint; a double 8 bytes little-endian; a string its
 * length and its UTF-8 bytes; a map blocks of (count, entries) ending with a zero count;
 * PredictionServed.features values are the union [null, boolean, long, double, string].
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define INLINE_SIZE 512 /* a record of the simulated requests is ~220 bytes */

typedef struct {
    char *data;
    Py_ssize_t length;
    Py_ssize_t capacity;
    char inline_buffer[INLINE_SIZE];
} Output;

static void output_init(Output *out) {
    out->data = out->inline_buffer;
    out->length = 0;
    out->capacity = INLINE_SIZE;
}

static void output_free(Output *out) {
    if (out->data != out->inline_buffer) {
        PyMem_Free(out->data);
    }
}

/* Room for `more` bytes after the written ones (0), or -1 with MemoryError set. */
static int reserve(Output *out, Py_ssize_t more) {
    if (more <= out->capacity - out->length) {
        return 0;
    }
    if (more > PY_SSIZE_T_MAX / 2 - out->length) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t capacity = 2 * (out->length + more);
    char *data;
    if (out->data == out->inline_buffer) {
        data = PyMem_Malloc((size_t)capacity);
        if (data != NULL) {
            memcpy(data, out->inline_buffer, (size_t)out->length);
        }
    } else {
        data = PyMem_Realloc(out->data, (size_t)capacity);
    }
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    out->data = data;
    out->capacity = capacity;
    return 0;
}

static int write_raw(Output *out, const char *bytes, Py_ssize_t size) {
    if (reserve(out, size) < 0) {
        return -1;
    }
    memcpy(out->data + out->length, bytes, (size_t)size);
    out->length += size;
    return 0;
}

static int write_varint(Output *out, unsigned long long n) {
    if (reserve(out, 10) < 0) { /* a 64-bit varint takes at most 10 bytes */
        return -1;
    }
    while (n >= 0x80) {
        out->data[out->length++] = (char)((n & 0x7F) | 0x80);
        n >>= 7;
    }
    out->data[out->length++] = (char)n;
    return 0;
}

static int write_long(Output *out, long long n) {
    return write_varint(out, ((unsigned long long)n << 1) ^ (unsigned long long)(n >> 63));
}

static int write_double(Output *out, double value) {
    if (reserve(out, 8) < 0) {
        return -1;
    }
    if (PyFloat_Pack8(value, out->data + out->length, 1) < 0) {
        return -1;
    }
    out->length += 8;
    return 0;
}

static int write_string(Output *out, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "expected a str, not %.100s", Py_TYPE(text)->tp_name);
        return -1;
    }
    Py_ssize_t size;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &size);
    if (utf8 == NULL) {
        return -1;
    }
    if (write_long(out, (long long)size) < 0) {
        return -1;
    }
    return write_raw(out, utf8, size);
}

static int write_bytes(Output *out, PyObject *bytes, const char *what) {
    if (!PyBytes_Check(bytes)) {
        PyErr_Format(PyExc_TypeError, "%s: expected bytes, not %.100s", what,
                     Py_TYPE(bytes)->tp_name);
        return -1;
    }
    return write_raw(out, PyBytes_AS_STRING(bytes), PyBytes_GET_SIZE(bytes));
}

/* A dict of `mapping` (a new reference): itself when it is exactly one, else a dict of
 * its items (a subclass may override what it iterates). */
static PyObject *as_dict(PyObject *mapping) {
    if (PyDict_CheckExact(mapping)) {
        Py_INCREF(mapping);
        return mapping;
    }
    return PyObject_CallOneArg((PyObject *)&PyDict_Type, mapping);
}

static int write_feature(Output *out, PyObject *name, PyObject *value) {
    PyTypeObject *type = Py_TYPE(value);
    if (type == &PyFloat_Type) {
        return write_raw(out, "\x06", 1) < 0 ? -1 : write_double(out, PyFloat_AS_DOUBLE(value));
    }
    if (type == &PyUnicode_Type) {
        return write_raw(out, "\x08", 1) < 0 ? -1 : write_string(out, value);
    }
    if (type == &PyLong_Type) {
        int overflow;
        long long n = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow) {
            PyErr_Format(PyExc_OverflowError, "feature %R: integer beyond 64 bits", name);
            return -1;
        }
        if (n == -1 && PyErr_Occurred()) {
            return -1;
        }
        return write_raw(out, "\x04", 1) < 0 ? -1 : write_long(out, n);
    }
    if (type == &PyBool_Type) {
        return write_raw(out, value == Py_True ? "\x02\x01" : "\x02\x00", 2);
    }
    if (value == Py_None) {
        return write_raw(out, "\x00", 1);
    }
    PyErr_Format(PyExc_TypeError, "feature %R: unsupported %s", name, type->tp_name);
    return -1;
}

static int write_context_value(Output *out, PyObject *name, PyObject *text) {
    (void)name;
    return write_string(out, text);
}

typedef int (*ValueWriter)(Output *, PyObject *, PyObject *);

/* A map with string keys (features or context): its entries in the order the mapping
 * iterates them, each value written by `write_value`, then the closing zero count. */
static int write_map(Output *out, PyObject *mapping, ValueWriter write_value) {
    PyObject *entries = as_dict(mapping);
    if (entries == NULL) {
        return -1;
    }
    int status = 0;
    Py_ssize_t count = PyDict_GET_SIZE(entries);
    if (count > 0) {
        status = write_long(out, (long long)count);
        Py_ssize_t position = 0;
        PyObject *name, *value;
        while (status == 0 && PyDict_Next(entries, &position, &name, &value)) {
            Py_INCREF(name);
            Py_INCREF(value);
            status = write_string(out, name) < 0 ? -1 : write_value(out, name, value);
            Py_DECREF(name);
            Py_DECREF(value);
        }
        if (status == 0 && PyDict_GET_SIZE(entries) != count) {
            PyErr_SetString(PyExc_RuntimeError, "a map changed size while it was encoded");
            status = -1;
        }
    }
    Py_DECREF(entries);
    return status < 0 ? -1 : write_raw(out, "\x00", 1);
}

PyDoc_STRVAR(encode_record_doc,
"encode_record(header, request_id, user_id, route, features, context, score, outcome, tail)\n"
"--\n\n"
"A framed PredictionServed record: header, the two ids as strings, route (encoded), the\n"
"features and context maps, score as a double, outcome and tail (encoded).");

static PyObject *encode_record(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 9) {
        PyErr_Format(PyExc_TypeError, "encode_record takes 9 arguments (%zd given)", nargs);
        return NULL;
    }
    double score = PyFloat_AsDouble(args[6]);
    if (score == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    Output out;
    output_init(&out);
    PyObject *encoded = NULL;
    if (write_bytes(&out, args[0], "header") == 0
        && write_string(&out, args[1]) == 0
        && write_string(&out, args[2]) == 0
        && write_bytes(&out, args[3], "route") == 0
        && write_map(&out, args[4], write_feature) == 0
        && write_map(&out, args[5], write_context_value) == 0
        && write_double(&out, score) == 0
        && write_bytes(&out, args[7], "outcome") == 0
        && write_bytes(&out, args[8], "tail") == 0) {
        encoded = PyBytes_FromStringAndSize(out.data, out.length);
    }
    output_free(&out);
    return encoded;
}

static PyMethodDef methods[] = {
    {"encode_record", (PyCFunction)(void (*)(void))encode_record, METH_FASTCALL,
     encode_record_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT,
    "streamlearn.serving._prediction_record",
    "A PredictionServed record's variable part as Avro binary, compiled "
    "(streamlearn.serving.prediction_codec uses it when it is built).",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__prediction_record(void) {
    return PyModule_Create(&module_definition);
}
