"""Attachment storage rules: type sniffing, size limit while streaming, names, signed URLs."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.config import Settings
from bot.conversations import attachments as files
from bot.conversations.attachments import (
    AttachmentTooLargeError,
    AttachmentUrlSigner,
    EmptyAttachmentError,
    UnsupportedAttachmentTypeError,
)

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + b"\x00" * 64
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 64
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + b"1 0 obj\n" * 8


async def _chunks(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


# -- sniffing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (JPEG, "image/jpeg"),
        (PNG, "image/png"),
        (WEBP, "image/webp"),
        (PDF, "application/pdf"),
        (b"GIF89a\x01\x00\x01\x00", None),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),  # RIFF, but audio
        (b"PK\x03\x04\x14\x00", None),  # zip (docx, xlsx…)
        (b"<!doctype html><script>", None),
        (b"\xff\xd8", None),  # too short to be a JPEG
        (b"", None),
    ],
)
def test_type_comes_from_the_magic_bytes(head: bytes, expected: str | None) -> None:
    assert files.sniff_content_type(head) == expected


@pytest.mark.parametrize(
    "declared", [None, "", "application/octet-stream", "image/png", "IMAGE/PNG; charset=x"]
)
def test_declared_type_may_be_missing_or_generic_or_right(declared: str | None) -> None:
    assert files.check_content_type(PNG, declared) == "image/png"


def test_jpeg_aliases_are_accepted() -> None:
    assert files.check_content_type(JPEG, "image/jpg") == "image/jpeg"
    assert files.check_content_type(JPEG, "image/pjpeg") == "image/jpeg"


@pytest.mark.parametrize(
    ("content", "declared"),
    [
        (PNG, "image/jpeg"),  # a mismatch is refused, whatever the bytes are
        (PDF, "image/png"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00\x00\x00\x00", "image/gif"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'>", "image/svg+xml"),
        (b"<html><script>alert(1)</script>", "image/png"),  # lies about its type
        (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00", "application/octet-stream"),
    ],
)
def test_other_types_and_mismatches_are_refused(content: bytes, declared: str) -> None:
    with pytest.raises(UnsupportedAttachmentTypeError) as refused:
        files.check_content_type(content, declared)
    assert refused.value.status_code == 415
    assert refused.value.message == files.UNSUPPORTED_TYPE


# -- file names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("parcel.jpg", "parcel.jpg"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\emma\\Pictures\\damaged box.jpg", "damaged box.jpg"),
        ("/var/../../secret.pdf", "secret.pdf"),
        ("  .hidden.png  ", "hidden.png"),
        ("photo\x00\x1b[31m.png", "photo_31m.png"),
        ("invoice\u202egnp.pdf", "invoicegnp.pdf"),  # right-to-left override removed
        ("Straße café.pdf", "Straße café.pdf"),
        ("a\n\tb.png", "a b.png"),
    ],
)
def test_filenames_keep_only_a_safe_display_name(raw: str, expected: str) -> None:
    assert files.sanitise_filename(raw, content_type="image/png") == expected


def test_html_in_a_filename_is_defused() -> None:
    name = files.sanitise_filename('<img src=x onerror="alert(1)">.png', content_type="image/png")
    assert not set(name) & set('<>"/\\')
    assert name.endswith(".png")


@pytest.mark.parametrize("raw", [None, "", "...", "../", "<>", "\x00\x01"])
def test_a_missing_or_empty_name_gets_a_neutral_one(raw: str | None) -> None:
    assert files.sanitise_filename(raw, content_type="application/pdf") == "attachment.pdf"


def test_long_names_are_shortened_keeping_the_extension() -> None:
    name = files.sanitise_filename("x" * 500 + ".jpeg", content_type="image/jpeg")
    assert len(name) <= files.MAX_FILENAME_CHARS
    assert name.endswith("….jpeg")


def test_human_sizes() -> None:
    assert files.human_size(5 * 1024 * 1024) == "5 MB"
    assert files.human_size(1536) == "1.5 KB"
    assert files.human_size(12) == "12 bytes"


# -- streaming into the store -------------------------------------------------------------------


async def test_upload_is_stored_atomically_under_its_digest(tmp_path: Path) -> None:
    content = PNG + b"\x01" * 200_000
    parts = [content[i : i + 65536] for i in range(0, len(content), 65536)]

    stored = await files.store_upload(
        _chunks(parts), root=tmp_path, max_bytes=1_000_000, declared_type="image/png"
    )

    digest = hashlib.sha256(content).hexdigest()
    assert stored == files.StoredFile(
        sha256=digest, size_bytes=len(content), content_type="image/png"
    )
    path = tmp_path / digest[:2] / digest
    assert path.read_bytes() == content
    assert files.blob_path(tmp_path, digest) == path
    assert list((tmp_path / files.TEMP_DIR_NAME).iterdir()) == []  # no temp file left


async def test_the_same_bytes_twice_share_one_file(tmp_path: Path) -> None:
    for _ in range(2):
        stored = await files.store_upload(
            _chunks([PDF]), root=tmp_path, max_bytes=10_000, declared_type=None
        )
    assert [p.name for p in tmp_path.glob("??/*")] == [stored.sha256]


async def test_a_file_of_exactly_the_limit_is_accepted(tmp_path: Path) -> None:
    content = JPEG + b"\x00" * (1000 - len(JPEG))
    stored = await files.store_upload(
        _chunks([content]), root=tmp_path, max_bytes=1000, declared_type="image/jpeg"
    )
    assert stored.size_bytes == 1000


async def test_too_big_stops_reading_and_stores_nothing(tmp_path: Path) -> None:
    read = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal read
        yield PNG
        while True:
            read += 1
            yield b"\x00" * 65536

    with pytest.raises(AttachmentTooLargeError) as refused:
        await files.store_upload(endless(), root=tmp_path, max_bytes=200_000, declared_type=None)

    assert read == 4  # stopped at the first chunk over the limit
    assert refused.value.status_code == 413
    assert "195.3 KB" in refused.value.message
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


async def test_wrong_type_is_refused_from_the_first_chunk(tmp_path: Path) -> None:
    read = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal read
        for _ in range(100):
            read += 1
            yield b"GIF89a" + b"\x00" * 65530

    with pytest.raises(UnsupportedAttachmentTypeError):
        await files.store_upload(body(), root=tmp_path, max_bytes=10**9, declared_type=None)
    assert read == 1
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


async def test_the_type_is_checked_across_tiny_chunks(tmp_path: Path) -> None:
    stored = await files.store_upload(
        _chunks([bytes([b]) for b in WEBP]), root=tmp_path, max_bytes=10_000, declared_type=""
    )
    assert stored.content_type == "image/webp"


async def test_a_tiny_file_of_unknown_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedAttachmentTypeError):
        await files.store_upload(_chunks([b"hi"]), root=tmp_path, max_bytes=10, declared_type=None)


async def test_empty_upload_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EmptyAttachmentError) as refused:
        await files.store_upload(
            _chunks([b"", b""]), root=tmp_path, max_bytes=10, declared_type="image/png"
        )
    assert refused.value.status_code == 400
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_blob_paths_only_take_digests(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        files.blob_path(tmp_path, "../../etc/passwd")


# -- signed URLs --------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _query(url: str) -> tuple[int, int, str]:
    path, _, query = url.partition("?")
    params = dict(part.split("=", 1) for part in query.split("&"))
    return int(path.rsplit("/", 1)[1]), int(params["exp"]), params["sig"]


def test_a_signed_url_verifies_until_it_expires() -> None:
    clock = Clock(1_800_000_000)
    signer = AttachmentUrlSigner(b"k" * 32, ttl_seconds=900, clock=clock)

    url = signer.url(7)
    attachment_id, expires, signature = _query(url)

    assert url.startswith("/attachments/7?exp=")
    assert (attachment_id, expires) == (7, 1_800_000_900)
    assert signer.verify(7, expires, signature)
    clock.now += 900
    assert signer.verify(7, expires, signature)
    clock.now += 1
    assert not signer.verify(7, expires, signature)


def test_tampered_urls_do_not_verify() -> None:
    signer = AttachmentUrlSigner(b"k" * 32, clock=Clock(1_800_000_000))
    _, expires, signature = _query(signer.url(7))

    assert not signer.verify(8, expires, signature)  # another attachment
    assert not signer.verify(7, expires + 3600, signature)  # a longer life
    assert not signer.verify(7, expires, signature[:-1] + ("A" if signature[-1] != "A" else "B"))
    assert not signer.verify(7, expires, "")
    assert not signer.verify(7, expires, "é" * 43)
    other = AttachmentUrlSigner(b"x" * 32, clock=Clock(1_800_000_000))
    assert not other.verify(7, expires, signature)


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        AttachmentUrlSigner(b"short")


def test_the_key_comes_from_the_signing_key_then_the_service_token() -> None:
    own = Settings(
        attachment_signing_key=SecretStr("attachment-key-0123456789"),
        service_token=SecretStr("service-token-0123456789"),
    )
    from_service = Settings(service_token=SecretStr("service-token-0123456789"))

    key = files.signing_key(own)
    assert key == files.signing_key(own)  # stable: every replica agrees
    assert len(key) == 32
    assert key != files.signing_key(from_service)
    assert files.signing_key(from_service) == files.signing_key(
        Settings(service_token=SecretStr("service-token-0123456789"))
    )
    assert b"service-token" not in files.signing_key(from_service)  # derived, not the secret


def test_without_secrets_a_random_key_is_used_and_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        first = files.signing_key(Settings())
        second = files.signing_key(Settings())
    assert first != second
    assert len(first) == 32
    assert all(first.hex() not in record.getMessage() for record in caplog.records)
    assert "attachment" in caplog.text


def test_placeholder_signing_keys_are_rejected() -> None:
    with pytest.raises(ValueError, match="placeholder"):
        Settings(attachment_signing_key=SecretStr("changethis"))


# -- payloads -------------------------------------------------------------------------------------


def test_attachment_ids_from_payloads() -> None:
    assert files.attachment_ids(None) == []
    assert files.attachment_ids({"attachments": [3, 1, 3]}) == [3, 1]
    assert files.attachment_ids({"attachments": [{"id": 5}, "7", True, -1, None, 2.0]}) == [5]
    assert files.attachment_ids({"attachments": "3"}) == []
    many = files.attachment_ids({"attachments": list(range(1, 100))})
    assert len(many) == files.MAX_ATTACHMENTS_PER_MESSAGE
