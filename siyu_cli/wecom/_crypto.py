"""WeCom's callback encryption (加解密方案, WXBizMsgCrypt's format), on the `cryptography` package.

- AESKey = Base64_Decode(EncodingAESKey + "="): 32 bytes, AES-256-CBC with IV = AESKey[:16].
- Plaintext = random(16) + len(msg) as 4 bytes, network order + msg + receiveid (the corp id for a
  self-built app's callbacks), PKCS#7-padded to a multiple of 32 bytes; msg_encrypt is its Base64.
- msg_signature = SHA-1 (lowercase hex) of the sorted [token, timestamp, nonce, msg_encrypt], concatenated.

URL verification is a GET whose `echostr` is a msg_encrypt: the answer is its plaintext. A callback is a
POST whose XML body carries <Encrypt>, signed in the query string. Every failure is a CallbackRejected
with a one-line message; none is a traceback.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import string
import xml.etree.ElementTree as ET

from siyu_cli.errors import BadAesKey, BadSignature, MalformedCallback, SiyuError, WrongCorp

BLOCK = 32  # WeCom pads to 32 bytes, not AES's 16
_RANDOM_ALPHABET = string.ascii_letters + string.digits


def parse_xml(text: str | bytes) -> ET.Element:
    """A callback's XML, refusing a DOCTYPE (entity expansion) before the parser sees it; MalformedCallback if not XML."""
    head = text[:4096].lower() if isinstance(text, bytes) else text[:4096].lower().encode()
    if b"<!doctype" in head or b"<!entity" in head:
        raise MalformedCallback("the callback carries a DOCTYPE or ENTITY; WeCom's XML has none")
    try:
        return ET.fromstring(text)
    except ET.ParseError as exc:
        raise MalformedCallback(f"the callback is not XML ({exc})") from None


class CallbackCrypto:
    """One corp's callback Token, EncodingAESKey and corp id: verify, decrypt and encrypt as WeCom does."""

    def __init__(self, token: str, encoding_aes_key: str, corp_id: str) -> None:
        key = encoding_aes_key.strip()
        try:
            raw = base64.b64decode(key + "=", validate=True) if len(key) == 43 else b""
        except binascii.Error:
            raw = b""
        if len(raw) != 32:
            raise BadAesKey(
                f"the EncodingAESKey is not 43 characters of letters and digits ({len(key)} given)",
                hint="copy it from the admin console (客户联系 → API → 接收事件服务器 → EncodingAESKey), or press 随机获取 there and paste both",
            )
        if not token or not corp_id:
            raise SiyuError("the callback Token and the corp id must not be empty")
        self.token = token
        self.corp_id = corp_id
        self._key = raw

    def signature(self, timestamp: str, nonce: str, encrypt: str) -> str:
        return hashlib.sha1("".join(sorted([self.token, timestamp, nonce, encrypt])).encode()).hexdigest()

    def verify(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        if not hmac.compare_digest(self.signature(timestamp, nonce, encrypt).encode(), msg_signature.strip().lower().encode()):
            raise BadSignature("msg_signature does not match: not signed with this Token (or the request was altered)")

    def decrypt(self, encrypt: str) -> str:
        """msg_encrypt → the message; the receiveid must be our corp id."""
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        try:
            data = base64.b64decode(encrypt.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise MalformedCallback("Encrypt is not Base64") from None
        if not data or len(data) % BLOCK:
            raise MalformedCallback(f"Encrypt is {len(data)} bytes, not a whole number of {BLOCK}-byte blocks")
        decryptor = Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16])).decryptor()
        plain = decryptor.update(data) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise MalformedCallback("bad padding after decryption: encrypted with another EncodingAESKey?")
        content = plain[16:-pad]
        if len(content) < 4:
            raise MalformedCallback("the decrypted message is too short to hold its length")
        size = int.from_bytes(content[:4], "big")
        if size > len(content) - 4:
            raise MalformedCallback("the decrypted message is shorter than its length says: encrypted with another EncodingAESKey?")
        receiveid = content[4 + size :].decode("utf-8", "replace")
        if receiveid != self.corp_id:
            raise WrongCorp(f"the callback is for corp {receiveid!r}, not {self.corp_id!r}")
        try:
            return content[4 : 4 + size].decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedCallback("the decrypted message is not UTF-8") from None

    def encrypt(self, message: str) -> str:
        """message → msg_encrypt, with a fresh random prefix (what WeCom sends; siyu's tests and bench post it)."""
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        body = message.encode("utf-8")
        prefix = "".join(secrets.choice(_RANDOM_ALPHABET) for _ in range(16)).encode()
        plain = prefix + len(body).to_bytes(4, "big") + body + self.corp_id.encode()
        pad = BLOCK - len(plain) % BLOCK
        encryptor = Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16])).encryptor()
        return base64.b64encode(encryptor.update(plain + bytes([pad]) * pad) + encryptor.finalize()).decode()

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """The admin console's URL check: the plaintext of `echostr`, to be answered as is."""
        self.verify(msg_signature, timestamp, nonce, echostr)
        return self.decrypt(echostr)

    def open(self, msg_signature: str, timestamp: str, nonce: str, body: bytes) -> str:
        """A callback POST's body → the decrypted XML."""
        encrypt = parse_xml(body).findtext("Encrypt")
        if not encrypt or not encrypt.strip():
            raise MalformedCallback("the callback's XML has no Encrypt")
        self.verify(msg_signature, timestamp, nonce, encrypt.strip())
        return self.decrypt(encrypt)

    def seal(self, message: str, timestamp: str, nonce: str) -> tuple[str, bytes]:
        """A callback as WeCom posts it: (msg_signature for the query string, the XML body)."""
        encrypt = self.encrypt(message)
        body = f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt><AgentID><![CDATA[]]></AgentID></xml>"
        return self.signature(timestamp, nonce, encrypt), body.encode()
