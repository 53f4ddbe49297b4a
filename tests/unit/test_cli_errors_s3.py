"""An S3 refusal of the credentials reads as one: what to check, not a bare "Forbidden"."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from streamlearn.cli_errors import one_line_error


def _refusal(code: str, operation: str, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


@pytest.mark.parametrize(
    "refusal",
    [
        # A HEAD has no body: a wrong key or secret is a bare 403 (AWS, moto with auth).
        _refusal("403", "HeadBucket", "Forbidden"),
        _refusal("InvalidAccessKeyId", "ListObjectsV2", "The AWS Access Key Id you provided"),
        _refusal("SignatureDoesNotMatch", "PutObject", "The request signature we calculated"),
        _refusal("AccessDenied", "GetObject", "Access Denied"),
    ],
)
def test_a_refused_key_names_the_credentials_and_permissions(refusal: ClientError) -> None:
    for raised in (refusal, _wrapped(refusal)):
        line = one_line_error(raised)
        assert line is not None
        assert line.startswith("S3: An error occurred"), line
        assert "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in line, line
        assert "the key's permissions on the bucket" in line, line


def test_a_missing_bucket_gets_no_credentials_hint() -> None:
    line = one_line_error(_refusal("NoSuchBucket", "PutObject", "The bucket does not exist"))
    assert line is not None
    assert "AWS_ACCESS_KEY_ID" not in line


def _wrapped(error: ClientError) -> OSError:
    """As s3fs raises it: an OSError (PermissionError) caused by botocore's error."""
    try:
        raise PermissionError(str(error)) from error
    except PermissionError as wrapped:
        return wrapped
