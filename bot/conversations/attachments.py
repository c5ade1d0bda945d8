"""Attachments: store uploads safely, read them back, and sign short-lived download URLs.

A file sent in a conversation (a customer's photo of a damaged parcel, an agent's PDF)
is stored outside the database, content-addressed, under
``settings.attachments_dir/<sha256[:2]>/<sha256>``; a row in ``attachments`` keeps the
display name, the type, the size and who sent it.

* **Uploads are streamed** (:func:`store_upload`): the body is read chunk by chunk into a
  temporary file next to the store, counted as it arrives (one byte over the limit stops
  the read and removes the file), hashed, and moved into place with ``os.replace``, so
  a reader never sees half a file and an upload that is refused leaves nothing behind.
* **The type is what the bytes say** (:func:`sniff_content_type`): JPEG, PNG, WebP or
  PDF magic numbers; anything else is refused, and so is a declared type that differs
  from the sniffed one. The stored type is always the sniffed one.
* **File names are for display only** (:func:`sanitise_filename`): path parts, control
  and bidi characters, and HTML/shell metacharacters are removed. Nothing on disk is
  named after them.
* **Download URLs are signed** (:class:`AttachmentUrlSigner`): ``/attachments/<id>?exp=
  <unix time>&sig=<HMAC-SHA256>``, valid for a few minutes, so an ``<img>`` tag can show
  a photo without the customer's chat token ever appearing in a URL. The key is derived
  from ``attachment_signing_key`` (or, when unset, from the per-run ``service_token``)
  with a fixed label, so the raw secret is never used directly; with neither, a random
  key lives as long as the process.

Messages name their attachments by id only (``payload["attachments"] = [id, ...]``);
:meth:`AttachmentService.present_frame` fills in the display information and a fresh
signed URL when a channel sends them, and only for attachments of that conversation.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
import tempfile
import time
import unicodedata
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import anyio.to_thread
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

import bot.db.models  # noqa: F401  (every table must be mapped before the first query)
from bot.agents.models import Agent
from bot.config import Settings
from bot.constants import (
    ALLOWED_ATTACHMENT_TYPES,
    DEFAULT_MAX_CUSTOMER_ATTACHMENTS_PER_CONVERSATION,
)
from bot.conversations.models import (
    Attachment,
    Conversation,
    ConversationMode,
    Message,
    MessageRole,
)
from bot.conversations.service import ConversationNotFoundError, add_message
from bot.handoff import service as tickets
from bot.handoff.models import Ticket

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

DEFAULT_URL_TTL_SECONDS = 15 * 60
SIGNING_LABEL = b"concierge/attachment-download-url/v1"
DOWNLOAD_PATH = "/attachments/{attachment_id}"
DESK_DOWNLOAD_PATH = "/desk/attachments/{attachment_id}"
UPLOADED_BY_CUSTOMER = "customer"
SNIFF_BYTES = 16
MAX_FILENAME_CHARS = 120
MAX_ATTACHMENTS_PER_MESSAGE = 10
TEMP_DIR_NAME = "tmp"
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")

# What the customer (or agent) reads when an upload is refused, and the bot's note.
EMPTY_FILE = "That file is empty — please choose another one."
TOO_LARGE = "Sorry — that file is too big; attachments can be up to {limit}."
UNSUPPORTED_TYPE = "Sorry — I can only accept photos (JPEG, PNG or WebP) and PDF files."
TOO_MANY = (
    "Sorry — this chat already holds the {limit} files it can take; a person from our team "
    'can help with more (type "talk to a person").'
)
KEPT_FOR_A_PERSON = (
    "Thanks — I've kept your file with this chat. I can't look at files myself; "
    'if you\'d like a person to see it, type "talk to a person".'
)

EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "application/pdf": ".pdf",
}
_TYPE_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "application/x-pdf": "application/pdf",
}
# Declared types that say nothing about the file: the sniffed type decides alone.
_UNDECLARED_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
# Shown as text everywhere, but kept out anyway: path, shell and HTML metacharacters.
_UNSAFE_FILENAME_CHARS = re.compile(r'[<>:"/\\|?*`$&;{}\[\]]')
_WHITESPACE = re.compile(r"\s+")


# -- errors ---------------------------------------------------------------------------------


class AttachmentError(ValueError):
    """An upload that is refused; ``message`` is one sentence for the person.

    Attributes:
        reason: What is wrong, for the log (never the file's content).
        message: The polite sentence for the customer or agent.
        status_code: The HTTP status a web route answers with.
    """

    status_code = 400

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(reason)


class EmptyAttachmentError(AttachmentError):
    """The upload had no bytes."""

    status_code = 400

    def __init__(self) -> None:
        super().__init__("empty upload", EMPTY_FILE)


class AttachmentTooLargeError(AttachmentError):
    """The upload is bigger than ``max_attachment_bytes``."""

    status_code = 413

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"upload over the limit of {limit} bytes", TOO_LARGE.format(limit=human_size(limit))
        )


class UnsupportedAttachmentTypeError(AttachmentError):
    """The bytes are not JPEG, PNG, WebP or PDF, or not what the upload declared."""

    status_code = 415

    def __init__(self, reason: str) -> None:
        super().__init__(reason, UNSUPPORTED_TYPE)


class TooManyAttachmentsError(AttachmentError):
    """The customer already uploaded the most files one conversation may hold."""

    status_code = 409

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"conversation already holds {limit} customer files", TOO_MANY.format(limit=limit)
        )


# -- types, names and sizes -----------------------------------------------------------------


def sniff_content_type(head: bytes) -> str | None:
    """Tell a file's type from its first bytes (magic numbers), never from its name.

    Args:
        head: The first bytes of the file (12 are enough for every supported type).

    Returns:
        ``image/jpeg``, ``image/png``, ``image/webp`` or ``application/pdf``, or ``None``
        for anything else.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def normalise_declared_type(declared: str | None) -> str:
    """The media type a client declared, lower-cased, without parameters or aliases.

    Args:
        declared: A ``Content-Type`` header value (may be missing).

    Returns:
        For example ``image/jpeg``; ``""`` when nothing was declared.
    """
    media_type = (declared or "").split(";", 1)[0].strip().lower()
    return _TYPE_ALIASES.get(media_type, media_type)


def check_content_type(head: bytes, declared: str | None) -> str:
    """Decide an upload's type from its first bytes and check it against the declared one.

    Args:
        head: The first bytes of the file.
        declared: The client's ``Content-Type`` (generic or missing types are ignored).

    Returns:
        The sniffed type, one of :data:`bot.constants.ALLOWED_ATTACHMENT_TYPES`.

    Raises:
        UnsupportedAttachmentTypeError: The bytes are of no allowed type, or of another
            type than the one declared.
    """
    sniffed = sniff_content_type(head)
    if sniffed is None or sniffed not in ALLOWED_ATTACHMENT_TYPES:
        raise UnsupportedAttachmentTypeError("content is not JPEG, PNG, WebP or PDF")
    claimed = normalise_declared_type(declared)
    if claimed not in _UNDECLARED_TYPES and claimed != sniffed:
        raise UnsupportedAttachmentTypeError(
            f"declared {claimed[:100]!r} but the content is {sniffed}"
        )
    return sniffed


def sanitise_filename(raw: str | None, *, content_type: str) -> str:
    """Make an uploaded file's name safe to show (it never names anything on disk).

    Keeps the last path part only, drops control, format (bidi) and unassigned
    characters, replaces path, shell and HTML metacharacters with ``_``, collapses
    whitespace, strips leading dots and shortens long names, keeping the extension.

    Args:
        raw: The name the client sent (untrusted; may be missing).
        content_type: The sniffed type, for the fallback name's extension.

    Returns:
        A non-empty display name of at most :data:`MAX_FILENAME_CHARS` characters.
    """
    name = unicodedata.normalize("NFC", raw or "").replace("\\", "/")
    name = _WHITESPACE.sub(" ", name.rsplit("/", 1)[-1])
    name = "".join(char for char in name if not unicodedata.category(char).startswith("C"))
    name = _UNSAFE_FILENAME_CHARS.sub("_", name)
    name = _WHITESPACE.sub(" ", name).strip().lstrip(". ").rstrip(". ")
    if not name.strip("_ "):
        return "attachment" + EXTENSIONS.get(content_type, "")
    if len(name) > MAX_FILENAME_CHARS:
        stem, dot, extension = name.rpartition(".")
        if dot and 0 < len(extension) <= 10:
            keep = MAX_FILENAME_CHARS - len(extension) - 2
            name = f"{stem[:keep].rstrip()}….{extension}"
        else:
            name = name[: MAX_FILENAME_CHARS - 1].rstrip() + "…"
    return name


def human_size(size_bytes: int) -> str:
    """A size as people read it: ``5 MB``, ``320 KB``, ``12 bytes``."""
    if size_bytes >= 1024 * 1024:
        value, unit = size_bytes / (1024 * 1024), "MB"
    elif size_bytes >= 1024:
        value, unit = size_bytes / 1024, "KB"
    else:
        return f"{size_bytes} bytes"
    return f"{value:.1f}".removesuffix(".0") + f" {unit}"


# -- storage --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredFile:
    """Bytes stored under the attachments folder, ready for an ``attachments`` row."""

    sha256: str
    size_bytes: int
    content_type: str


def blob_path(root: Path, sha256: str) -> Path:
    """Where the bytes with this digest live: ``root/<sha256[:2]>/<sha256>``.

    Args:
        root: ``settings.attachments_dir``.
        sha256: The lower-case hex digest of the content.

    Returns:
        The path (the file may be missing).

    Raises:
        ValueError: ``sha256`` is not 64 lower-case hex characters.
    """
    if not _SHA256_HEX.fullmatch(sha256):
        raise ValueError("not a sha256 hex digest")
    return root / sha256[:2] / sha256


async def store_upload(
    chunks: AsyncIterable[bytes],
    *,
    root: Path,
    max_bytes: int,
    declared_type: str | None,
) -> StoredFile:
    """Stream an upload into the store, checking its type and size while reading.

    The type is checked as soon as the first bytes arrive, the size after every chunk;
    either failure stops reading at once. The bytes go to a temporary file in
    ``root/tmp`` that is synced and then renamed into place (``os.replace``), so the
    store only ever holds complete files, and a refused upload leaves nothing.

    Args:
        chunks: The body, in chunks as they arrive (e.g. ``request.stream()``).
        root: ``settings.attachments_dir``.
        max_bytes: The largest accepted file.
        declared_type: The client's ``Content-Type`` for the file.

    Returns:
        The stored file's digest, size and sniffed type.

    Raises:
        EmptyAttachmentError: No bytes.
        AttachmentTooLargeError: More than ``max_bytes``.
        UnsupportedAttachmentTypeError: Not JPEG/PNG/WebP/PDF, or not the declared type.
    """
    temp_dir = root / TEMP_DIR_NAME
    await anyio.to_thread.run_sync(lambda: temp_dir.mkdir(parents=True, exist_ok=True))
    fd, temp_name = tempfile.mkstemp(prefix="upload-", dir=temp_dir)
    temp_path = Path(temp_name)
    handle: IO[bytes] = os.fdopen(fd, "wb")
    digest = hashlib.sha256()
    size = 0
    head = b""
    content_type: str | None = None
    try:
        async for chunk in chunks:
            if not chunk:
                continue
            size += len(chunk)
            if size > max_bytes:
                raise AttachmentTooLargeError(max_bytes)
            if content_type is None:
                head += chunk[: SNIFF_BYTES - len(head)]
                if len(head) >= SNIFF_BYTES:
                    content_type = check_content_type(head, declared_type)
            digest.update(chunk)
            await anyio.to_thread.run_sync(handle.write, chunk)
        if size == 0:
            raise EmptyAttachmentError
        if content_type is None:
            content_type = check_content_type(head, declared_type)
        await anyio.to_thread.run_sync(_sync_and_close, handle)
        sha256 = digest.hexdigest()
        target = blob_path(root, sha256)
        await anyio.to_thread.run_sync(_move_into_place, temp_path, target)
    except BaseException:
        handle.close()
        with contextlib.suppress(OSError):
            temp_path.unlink()
        raise
    return StoredFile(sha256=sha256, size_bytes=size, content_type=content_type)


def _sync_and_close(handle: IO[bytes]) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()


def _move_into_place(temp_path: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(temp_path, target)  # atomic; the same content may already be there


# -- signed download URLs ---------------------------------------------------------------------


def signing_key(settings: Settings) -> bytes:
    """The key download URLs are signed with, derived from the settings' secrets.

    ``attachment_signing_key`` when set, otherwise the run's ``service_token`` (which
    ``python -m bot run`` always sets), each put through HMAC-SHA256 with a fixed label
    so the secret itself is never the key. With neither, a random key for this process
    (links then stop working on restart and differ between replicas).

    Args:
        settings: The process settings.

    Returns:
        32 key bytes (never logged).
    """
    secret = settings.attachment_signing_key or settings.service_token
    if secret is None:
        logger.warning(
            "no attachment_signing_key or service_token is set; attachment links are "
            "signed with a key that lasts until this process stops"
        )
        return secrets.token_bytes(32)
    return hmac.new(secret.get_secret_value().encode("utf-8"), SIGNING_LABEL, "sha256").digest()


class AttachmentUrlSigner:
    """Signs and checks ``/attachments/<id>?exp=…&sig=…`` URLs (HMAC-SHA256)."""

    def __init__(
        self,
        key: bytes,
        *,
        ttl_seconds: int = DEFAULT_URL_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Create a signer.

        Args:
            key: The secret key (see :func:`signing_key`).
            ttl_seconds: How long a URL stays valid.
            clock: Seconds since the epoch (tests pass a fake).
        """
        if len(key) < 16:
            raise ValueError("the signing key is too short")
        self._key = key
        self.ttl_seconds = ttl_seconds
        self._clock = clock

    def signature(self, attachment_id: int, expires: int) -> str:
        """The URL-safe signature of one attachment id and expiry time."""
        message = f"attachment:{attachment_id}:{expires}".encode("ascii")
        mac = hmac.new(self._key, message, "sha256").digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def url(self, attachment_id: int) -> str:
        """A fresh download URL (path and query) for an attachment.

        Args:
            attachment_id: The attachment.

        Returns:
            ``/attachments/<id>?exp=<unix time>&sig=<signature>``.
        """
        expires = int(self._clock()) + self.ttl_seconds
        path = DOWNLOAD_PATH.format(attachment_id=attachment_id)
        return f"{path}?exp={expires}&sig={self.signature(attachment_id, expires)}"

    def verify(self, attachment_id: int, expires: int, signature: str) -> bool:
        """Whether a URL's signature is right and it has not expired.

        Args:
            attachment_id: The id in the URL's path.
            expires: Its ``exp`` parameter.
            signature: Its ``sig`` parameter.

        Returns:
            True only for an unexpired URL this key signed (compared in constant time).
        """
        if expires < self._clock():
            return False
        expected = self.signature(attachment_id, expires)
        return hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii", "replace"))


# -- rows and presentation -------------------------------------------------------------------


class AttachmentInfo(BaseModel):
    """What a page needs to show an attachment.

    In an outbound message straight from the store only ``id`` is set; the channel
    fills in the rest (:meth:`AttachmentService.present_frame`).
    """

    id: int
    filename: str = ""
    content_type: str = ""
    size_bytes: int = 0
    url: str = ""


def attachment_ids(payload: Mapping[str, Any] | None) -> list[int]:
    """The attachment ids a message payload names (``{"attachments": [id, ...]}``).

    Args:
        payload: A stored message's payload.

    Returns:
        The ids, in order, without duplicates or anything that is not an id.
    """
    raw = (payload or {}).get("attachments")
    if not isinstance(raw, list):
        return []
    ids: list[int] = []
    for value in raw[:MAX_ATTACHMENTS_PER_MESSAGE]:
        candidate = value.get("id") if isinstance(value, Mapping) else value
        if isinstance(candidate, bool) or not isinstance(candidate, int):
            continue
        if candidate > 0 and candidate not in ids:
            ids.append(candidate)
    return ids


def describe(attachment: Attachment, *, url: str) -> AttachmentInfo:
    """The display information of a stored attachment, with a URL to fetch it."""
    return AttachmentInfo(
        id=attachment.id,
        filename=attachment.filename,
        content_type=attachment.content_type,
        size_bytes=attachment.size_bytes,
        url=url,
    )


def desk_url(attachment_id: int) -> str:
    """The desk's download URL of an attachment (signed-in agents of the ticket's team)."""
    return DESK_DOWNLOAD_PATH.format(attachment_id=attachment_id)


def add_attachment(
    session: Session,
    *,
    conversation_id: str,
    stored: StoredFile,
    filename: str,
    uploaded_by: str,
    message_id: int | None = None,
    commit: bool = True,
) -> Attachment:
    """Store an attachment's row (the bytes are already in place).

    Args:
        session: The open session (committed here unless ``commit`` is false).
        conversation_id: The conversation the file was sent in.
        stored: What :func:`store_upload` stored.
        filename: The display name, already sanitised.
        uploaded_by: ``"customer"`` or ``"agent:<id>"``.
        message_id: The message that carries it, when known.
        commit: Commit now; false when the caller commits a larger change.

    Returns:
        The new row, with its id.
    """
    attachment = Attachment(
        conversation_id=conversation_id,
        message_id=message_id,
        filename=filename,
        content_type=stored.content_type,
        size_bytes=stored.size_bytes,
        sha256=stored.sha256,
        uploaded_by=uploaded_by,
    )
    session.add(attachment)
    if commit:
        session.commit()
    else:
        session.flush()
    logger.info(
        "attachment stored attachment=%s conversation=%s type=%s bytes=%s by=%s",
        attachment.id,
        conversation_id,
        stored.content_type,
        stored.size_bytes,
        uploaded_by,
    )
    return attachment


def conversation_attachments(
    session: Session, *, conversation_id: str, ids: Iterable[int]
) -> dict[int, Attachment]:
    """The attachments with these ids that belong to this conversation (others are left out).

    Args:
        session: The open session.
        conversation_id: The conversation whose files may be shown.
        ids: Attachment ids from messages.

    Returns:
        The rows by id.
    """
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = session.scalars(
        select(Attachment).where(
            Attachment.id.in_(wanted), Attachment.conversation_id == conversation_id
        )
    )
    return {row.id: row for row in rows}


def agent_may_see(session: Session, *, attachment: Attachment, agent: Agent) -> bool:
    """Whether an agent may open an attachment: they may work a ticket of its conversation.

    Args:
        session: The open session.
        attachment: The attachment.
        agent: The signed-in agent.

    Returns:
        True when one of the conversation's tickets (open or closed) is in the agent's
        teams (admins: any).
    """
    ticket_rows = session.scalars(
        select(Ticket).where(Ticket.conversation_id == attachment.conversation_id)
    )
    return any(tickets.may_work(agent, ticket) for ticket in ticket_rows)


@dataclass(frozen=True)
class CustomerUpload:
    """A customer's file as stored in the conversation, and who must be told."""

    attachment: Attachment
    message: Message
    ticket: Ticket | None
    notice: Message | None


def count_customer_attachments(session: Session, *, conversation_id: str) -> int:
    """How many files the customer has uploaded into the conversation."""
    return (
        session.scalar(
            select(func.count(Attachment.id)).where(
                Attachment.conversation_id == conversation_id,
                Attachment.uploaded_by == UPLOADED_BY_CUSTOMER,
            )
        )
        or 0
    )


def check_customer_quota(session: Session, *, conversation_id: str, limit: int) -> None:
    """Refuse a further upload once the conversation holds ``limit`` customer files.

    Raises:
        TooManyAttachmentsError: The conversation is full.
    """
    if count_customer_attachments(session, conversation_id=conversation_id) >= limit:
        raise TooManyAttachmentsError(limit)


def record_customer_upload(
    session: Session,
    *,
    conversation_id: str,
    stored: StoredFile,
    filename: str,
    max_files: int | None = None,
) -> CustomerUpload:
    """Store a customer's file as a message of the conversation, in one transaction.

    The message reads ``📎 <filename>`` with ``{"attachments": [id]}``. With an open
    ticket the audit log records it (the caller tells the desk); with none, and the bot
    answering, a short system note says a person can look at it on request (the bot
    itself cannot read files; nothing is sent to Rasa).

    Args:
        session: The open session (committed here).
        conversation_id: The customer's conversation.
        stored: The stored bytes.
        filename: The sanitised display name.
        max_files: The most customer files the conversation may hold (``None``: no cap).
            Checked again here, under the conversation's lock, so two uploads at once
            cannot both squeeze past the route's early check.

    Returns:
        The attachment, the message, the open ticket and the bot's note, if any.

    Raises:
        ConversationNotFoundError: The conversation does not exist.
        TooManyAttachmentsError: The conversation already holds ``max_files`` files.
    """
    conversation = session.get(Conversation, conversation_id, with_for_update=True)
    if conversation is None:
        raise ConversationNotFoundError(conversation_id)
    if max_files is not None:
        check_customer_quota(session, conversation_id=conversation_id, limit=max_files)
    attachment = add_attachment(
        session,
        conversation_id=conversation_id,
        stored=stored,
        filename=filename,
        uploaded_by=UPLOADED_BY_CUSTOMER,
        commit=False,
    )
    message = add_message(
        session,
        conversation_id=conversation_id,
        role=MessageRole.CUSTOMER.value,
        text=f"📎 {filename}",
        payload={"attachments": [attachment.id]},
        commit=False,
    )
    attachment.message_id = message.id
    ticket = tickets.open_ticket_for(session, conversation_id=conversation_id)
    notice = None
    if ticket is not None:
        tickets.record_customer_message(session, ticket=ticket, message_id=message.id)
    elif conversation.mode == ConversationMode.BOT.value:
        notice = add_message(
            session,
            conversation_id=conversation_id,
            role=MessageRole.SYSTEM.value,
            text=KEPT_FOR_A_PERSON,
            commit=False,
        )
    session.commit()
    return CustomerUpload(attachment=attachment, message=message, ticket=ticket, notice=notice)


# -- the service the web layer uses ------------------------------------------------------------


class AttachmentService:
    """Attachments for the web layer: storage, signed URLs, and frames with display info."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        root: Path,
        max_bytes: int,
        signer: AttachmentUrlSigner,
        max_customer_files: int = DEFAULT_MAX_CUSTOMER_ATTACHMENTS_PER_CONVERSATION,
    ) -> None:
        """Create the service.

        Args:
            session_factory: Opens app-database sessions.
            root: ``settings.attachments_dir``.
            max_bytes: The largest accepted file.
            signer: Signs and checks download URLs.
            max_customer_files: The most files a customer may upload into one conversation.
        """
        self._session_factory = session_factory
        self.root = root
        self.max_bytes = max_bytes
        self.signer = signer
        self.max_customer_files = max_customer_files

    @classmethod
    def from_settings(
        cls, settings: Settings, *, session_factory: sessionmaker[Session]
    ) -> AttachmentService:
        """The service the settings describe (folder, limit, signing key)."""
        return cls(
            session_factory=session_factory,
            root=settings.attachments_dir,
            max_bytes=settings.max_attachment_bytes,
            signer=AttachmentUrlSigner(signing_key(settings)),
            max_customer_files=settings.max_customer_attachments_per_conversation,
        )

    async def db(self, func: Callable[..., _T], /, **kwargs: Any) -> _T:
        """Run ``func(session, **kwargs)`` in a worker thread with its own session."""

        def run() -> _T:
            with self._session_factory() as session:
                return func(session, **kwargs)

        return await anyio.to_thread.run_sync(run)

    async def store(self, chunks: AsyncIterable[bytes], *, declared_type: str | None) -> StoredFile:
        """Stream an upload into the store (see :func:`store_upload`)."""
        return await store_upload(
            chunks, root=self.root, max_bytes=self.max_bytes, declared_type=declared_type
        )

    def path_of(self, attachment: Attachment) -> Path:
        """Where an attachment's bytes are (the file may be missing)."""
        return blob_path(self.root, attachment.sha256)

    def customer_info(self, attachment: Attachment) -> AttachmentInfo:
        """Display information with a fresh signed URL (for the customer's page)."""
        return describe(attachment, url=self.signer.url(attachment.id))

    async def present(
        self, messages: list[dict[str, Any]], *, conversation_id: str
    ) -> list[dict[str, Any]]:
        """Fill in the attachments of outbound messages (JSON form) for the customer.

        Each message's ``attachments`` (ids, as :class:`AttachmentInfo` dicts) becomes
        the full display information with a fresh signed URL; ids that are unknown or
        belong to another conversation are dropped.

        Args:
            messages: Messages in their JSON form (``OutboundMessage.model_dump``).
            conversation_id: The conversation the page shows.

        Returns:
            The messages, changed copies where they had attachments.
        """
        wanted = [
            info["id"]
            for message in messages
            for info in message.get("attachments") or []
            if isinstance(info, Mapping) and isinstance(info.get("id"), int)
        ]
        if not wanted:
            return messages
        rows = await self.db(conversation_attachments, conversation_id=conversation_id, ids=wanted)
        presented = []
        for message in messages:
            listed = message.get("attachments")
            if listed:
                infos = [
                    self.customer_info(rows[info["id"]]).model_dump(mode="json")
                    for info in listed
                    if isinstance(info, Mapping) and info.get("id") in rows
                ]
                message = {**message, "attachments": infos}
            presented.append(message)
        return presented

    async def present_frame(self, frame: dict[str, Any], *, conversation_id: str) -> dict[str, Any]:
        """A websocket frame with its messages' attachments filled in (see :meth:`present`).

        Never raises: if the lookup fails, the attachments are left out and the failure
        is logged with the conversation id.

        Args:
            frame: A ``message`` or ``history`` frame (others pass unchanged).
            conversation_id: The conversation the socket serves.

        Returns:
            The frame to send.
        """
        try:
            if frame.get("type") == "message" and frame.get("attachments"):
                (message,) = await self.present([frame], conversation_id=conversation_id)
                return message
            if frame.get("type") == "history":
                messages = await self.present(
                    list(frame.get("messages") or []), conversation_id=conversation_id
                )
                return {**frame, "messages": messages}
        except Exception:
            logger.exception("could not present attachments conversation=%s", conversation_id)
            return _without_attachments(frame)
        return frame


def _without_attachments(frame: dict[str, Any]) -> dict[str, Any]:
    if frame.get("type") == "history":
        return {
            **frame,
            "messages": [{**m, "attachments": []} for m in frame.get("messages") or []],
        }
    return {**frame, "attachments": []} if "attachments" in frame else frame
