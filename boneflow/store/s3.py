"""S3 (or any S3-compatible server: MinIO, moto) as the store, through boto3 (README, "MinIO or
AWS S3"). boto3 supplies the endpoint (`AWS_ENDPOINT_URL[_S3]`, overridden by `endpoint_url`), the
credentials (never read, logged or stored here), bounded retries with connect/read timeouts (so a
dead server ends in a clear error soon) and multipart transfers. Conditional writes are probed
once first: a server that ignores or rejects the headers raises ConditionalWritesUnsupportedError
instead of silently allowing two winners.
"""

from __future__ import annotations

import builtins
import contextlib
import re
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from boneflow.atomic import atomic_path
from boneflow.store.base import Listing, ObjectInfo, SkippedKey, Store, read_capped
from boneflow.store.errors import (
    ConditionalWritesUnsupportedError,
    ConflictError,
    ObjectNotFoundError,
    StoreError,
    StoreUnavailableError,
)
from boneflow.store.keys import validate_key, validate_prefix

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_CONFLICT = {"412", "409", "PreconditionFailed", "ConditionalRequestConflict"}
_UNSUPPORTED = {"501", "NotImplemented"}
_PROBE_PREFIX = "boneflow-probe/"
_PROBE_RE = re.compile(r"^boneflow-probe/[0-9a-f]{16}$")  # what check_conditional_writes names
# botocore's own rule (legacy buckets may hold capitals and '_'); a name outside it can never
# succeed, so it is refused before any request instead of being retried.
_BUCKET_RE = re.compile(r"^[A-Za-z0-9._-]{1,255}$")
_UPLOAD_MARK = "#upload="  # temp id of an incomplete multipart upload: <key>#upload=<UploadId>


def parse_s3_url(url: str) -> tuple[str, str]:
    """'s3://bucket/some/prefix' -> ('bucket', 'some/prefix/'); prefix '' for the bucket root."""
    rest = url[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise StoreError(f"Store URL {url!r} has no bucket; write s3://BUCKET[/PREFIX].")
    if not _BUCKET_RE.match(bucket):
        raise StoreError(
            f"Store URL {url!r}: {bucket!r} is not a valid S3 bucket name (letters, digits, '.', "
            "'-' and '_' only; AWS wants 3-63 lowercase letters, digits, '.' and '-'). Check --store."
        )
    prefix = prefix.strip("/")
    if prefix:
        validate_key(prefix)
        prefix += "/"
    return bucket, prefix


def _error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _status(err: ClientError) -> str:
    return str(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


class S3Store(Store):
    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        max_attempts: int = 5,  # total tries per request, first one included
        connect_timeout: float = 5.0,  # seconds to open a connection
        read_timeout: float = 60.0,  # seconds to wait for response bytes
        multipart_threshold: int = 64 * 1024 * 1024,  # files above this go multipart
        multipart_chunksize: int = 16 * 1024 * 1024,
        check_bucket: bool = True,  # HEAD the bucket now, for a clear "missing bucket" error
    ):
        self.url = url
        self.bucket, self.prefix = parse_s3_url(url)
        config = Config(
            # botocore's "max_attempts" counts retries only; "total_max_attempts" counts the
            # first try too, which is what our max_attempts means.
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        # A private session: thread-safe client, and no shared default-session state.
        self._client = boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)
        self.endpoint_url = self._client.meta.endpoint_url
        self._where = f"s3://{self.bucket} at {self.endpoint_url}"  # names the store in messages
        self.max_attempts = max_attempts
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_chunksize,
            # s3transfer retries downloads on its own; keep it as bounded as the client.
            num_download_attempts=max(1, max_attempts),
        )
        self._conditional_checked = False
        self._probe_lock = threading.Lock()
        if check_bucket:
            self._check_bucket()

    # --- errors ---------------------------------------------------------------------------
    def _translate(self, err: Exception, key: str, action: str) -> StoreError:
        if isinstance(err, ClientError):
            code, status = _error_code(err), _status(err)
            if code == "NoSuchBucket":
                return self._missing_bucket_error()
            if code in _NOT_FOUND or status == "404":
                return ObjectNotFoundError(f"{key!r} is not in {self._where}.")
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                return StoreError(
                    f"{action} {key!r} on {self._where} was refused ({code}); check "
                    "the AWS credentials/permissions in the environment."
                )
            return StoreError(
                f"{action} {key!r} on {self._where} failed: {code or status} "
                f"{err.response.get('Error', {}).get('Message', '')}".rstrip()
            )
        if isinstance(err, NoCredentialsError):
            return StoreError(
                f"{action} {key!r} on {self._where}: no AWS credentials found. Set "
                "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE or an instance role."
            )
        return StoreUnavailableError(
            f"{action} {key!r} on {self._where} failed after {self.max_attempts} attempt(s): "
            f"{type(err).__name__}: {err}. Check that the S3 server is running and reachable "
            "(AWS_ENDPOINT_URL), then retry."
        )

    def _missing_bucket_error(self) -> StoreError:
        endpoint = "" if "amazonaws.com" in (self.endpoint_url or "") else f" --endpoint-url {self.endpoint_url}"
        return StoreError(
            f"S3 bucket {self.bucket!r} does not exist at {self.endpoint_url}. "
            f"Create it first, e.g. `aws s3 mb s3://{self.bucket}{endpoint}`."
        )

    def _check_bucket(self) -> None:
        try:
            with self._errors("", "Checking bucket"):
                self._client.head_bucket(Bucket=self.bucket)
        except ObjectNotFoundError:  # HEAD has no body: a missing bucket is a bare 404
            raise self._missing_bucket_error() from None

    @contextlib.contextmanager
    def _errors(self, key: str, action: str):
        try:
            yield
        except (ClientError, BotoCoreError) as err:
            raise self._translate(err, key, action) from None

    def _full(self, key: str) -> str:
        return self.prefix + validate_key(key)

    # --- plain objects --------------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes) -> None:
        with self._errors(key, "Writing"):
            self._client.put_object(Bucket=self.bucket, Key=self._full(key), Body=bytes(data))

    def _get(self, key: str, max_bytes: int | None) -> tuple[bytes, dict]:
        with self._errors(key, "Reading"):
            resp = self._client.get_object(Bucket=self.bucket, Key=self._full(key))
            with contextlib.closing(resp["Body"]) as body:  # an unread body holds its connection
                size = int(resp.get("ContentLength") or 0)
                return read_capped(body, size, key, self._where, max_bytes), resp

    def get_bytes(self, key: str, *, max_bytes: int | None = None) -> bytes:
        return self._get(key, max_bytes)[0]

    def put_file(self, key: str, path: Path) -> None:
        with self._errors(key, "Uploading"):
            self._client.upload_file(str(path), self.bucket, self._full(key), Config=self._transfer)

    def get_file(self, key: str, path: Path) -> None:
        with atomic_path(Path(path)) as tmp, self._errors(key, "Downloading"):
            self._client.download_file(self.bucket, self._full(key), str(tmp), Config=self._transfer)

    def size(self, key: str) -> int | None:
        try:
            with self._errors(key, "Checking"):
                return int(self._client.head_object(Bucket=self.bucket, Key=self._full(key))["ContentLength"])
        except ObjectNotFoundError:
            return None

    def _listed(self, operation: str, field: str, prefix: str, action: str) -> Iterator[tuple[str, dict]]:
        """(key relative to the store, entry) for each entry of a paginated listing under `prefix`."""
        with self._errors(prefix, action):
            pages = self._client.get_paginator(operation).paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)
            for page in pages:
                for entry in page.get(field, []):
                    yield entry["Key"][len(self.prefix) :], entry

    def scan(self, prefix: str = "") -> Listing:
        validate_prefix(prefix)
        listing = Listing([], [])
        for key, obj in self._listed("list_objects_v2", "Contents", prefix, "Listing"):
            try:
                validate_key(key)
            except StoreError as err:  # `runs/<id>/../../champion.json`, a console's `runs/`
                listing.skipped.append(SkippedKey(key, str(err)))
                continue
            listing.objects.append(ObjectInfo(key, int(obj["Size"]), obj["LastModified"]))
        listing.objects.sort(key=lambda o: o.key)
        listing.skipped.sort(key=lambda k: k.key)
        return listing

    def temp_objects(self) -> builtins.list[ObjectInfo]:
        # Killed uploads leave multipart parts that are billed but invisible to listings, and a
        # killed conditional-write probe leaves its object.
        out = [o for o in self.scan(_PROBE_PREFIX).objects if _PROBE_RE.match(o.key)]  # only our own probes
        for key, up in self._listed("list_multipart_uploads", "Uploads", "", "Listing multipart uploads of"):
            with contextlib.suppress(StoreError):  # an invalid key: another tool's upload, not ours to abort
                out.append(ObjectInfo(f"{validate_key(key)}{_UPLOAD_MARK}{up['UploadId']}", 0, up["Initiated"]))
        return sorted(out, key=lambda o: o.key)

    def delete_temp(self, temp_id: str) -> None:
        key, mark, upload_id = temp_id.partition(_UPLOAD_MARK)
        if mark and upload_id:
            with self._errors(key, "Aborting the multipart upload of"):
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=self._full(key), UploadId=upload_id)
        elif _PROBE_RE.match(temp_id):
            self.delete(temp_id)
        else:
            raise StoreError(f"{temp_id!r} is not a temp object of {self._where}; not deleting it.")

    def delete(self, key: str) -> None:
        with self._errors(key, "Deleting"):
            self._client.delete_object(Bucket=self.bucket, Key=self._full(key))

    # --- conditional writes ---------------------------------------------------------------
    def read_with_etag(self, key: str, *, max_bytes: int | None = None) -> tuple[bytes, str] | None:
        try:
            data, resp = self._get(key, max_bytes)
        except ObjectNotFoundError:
            return None
        return data, resp["ETag"]

    def put_if(self, key: str, data: bytes, *, etag: str | None) -> str:
        self.check_conditional_writes()
        return self._put_conditional(key, data, etag=etag)

    def _put_conditional(self, key: str, data: bytes, *, etag: str | None) -> str:
        condition = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": etag}
        try:
            resp = self._client.put_object(Bucket=self.bucket, Key=self._full(key), Body=bytes(data), **condition)
        except ClientError as err:
            code, status = _error_code(err), _status(err)
            if code in _CONFLICT or status in _CONFLICT:
                expected = "absent" if etag is None else f"at ETag {etag}"
                raise ConflictError(
                    f"{key!r} on {self._where} is no longer {expected} "
                    f"({code or status}); another writer got there first."
                ) from None
            if etag is not None and (code in _NOT_FOUND or status == "404"):
                raise ConflictError(
                    f"{key!r} on {self._where} was deleted since it was read "
                    f"(expected ETag {etag}); another writer changed it."
                ) from None
            if code in _UNSUPPORTED or status == "501":
                raise self._unsupported(f"it answered {code or status} to a conditional PutObject") from None
            raise self._translate(err, key, "Conditionally writing") from None
        except BotoCoreError as err:
            raise self._translate(err, key, "Conditionally writing") from None
        return resp["ETag"]

    def _unsupported(self, why: str) -> ConditionalWritesUnsupportedError:
        return ConditionalWritesUnsupportedError(
            f"The S3 server at {self.endpoint_url} does not support conditional writes "
            f"(If-None-Match / If-Match on PutObject): {why}. Without them two runs could both "
            "replace champion.json silently, so boneflow refuses to promote. Use AWS S3, a recent "
            "MinIO, or a folder store."
        )

    def check_conditional_writes(self) -> None:
        """Probe once per store: a second create-only write and a wrong If-Match must both be
        refused with 412, otherwise the server does not honour the conditions."""
        if self._conditional_checked:
            return
        with self._probe_lock:
            if self._conditional_checked:
                return
            probe = _PROBE_PREFIX + secrets.token_hex(8)
            try:
                self._put_conditional(probe, b"1", etag=None)
                for data, etag, accepted in (
                    (b"2", None, "If-None-Match: * on an existing object"),
                    (b"3", '"00000000000000000000000000000000"', "If-Match with a wrong ETag"),
                ):
                    try:
                        self._put_conditional(probe, data, etag=etag)
                    except ConflictError:
                        continue
                    raise self._unsupported(f"it accepted {accepted}")
            finally:
                with contextlib.suppress(StoreError):
                    self.delete(probe)
            self._conditional_checked = True
