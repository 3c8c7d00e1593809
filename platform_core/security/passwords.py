"""Passwords: argon2id hashes and a policy a loan office can live with."""

from __future__ import annotations

import base64
import secrets
import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.low_level import ARGON2_VERSION

from platform_core.errors import InvalidInput

HASHER = PasswordHasher()  # argon2id, the library's current recommended parameters
MIN_LENGTH = 10
COMMON = frozenset({"password123", "1234567890", "qwertyuiop", "admin12345", "woaini1314",
                    "abc1234567", "1qaz2wsx3edc", "p@ssw0rd12", "iloveyou12", "0123456789"})


class WeakPassword(InvalidInput):
    code = "weak_password"


def check_policy(password: str, *, username: str = "") -> None:
    """Refuse a weak password with a message saying what to change (Chinese + English)."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"至少 {MIN_LENGTH} 个字符 / at least {MIN_LENGTH} characters")
    classes = sum(any(c in group for c in password) for group in (
        string.ascii_lowercase, string.ascii_uppercase, string.digits))
    classes += any(not c.isalnum() for c in password)
    if classes < 2:
        problems.append("需包含字母、数字、符号中的至少两类 / mix at least two of letters, "
                        "digits and symbols")
    if username and username.lower() in password.lower():
        problems.append("不能包含用户名 / must not contain the username")
    if password.lower() in COMMON:
        problems.append("过于常见 / too common")
    if problems:
        raise WeakPassword("password: " + "; ".join(problems), field="password")


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def decoy_hash() -> str:
    """A hash no password matches that costs exactly what a real one costs to verify: the
    hasher's parameters with random salt and digest. Verifying against it for an unknown
    user keeps sign-in times alike without hashing anything at import (an argon2 hash
    there added 0.4 s to every start)."""
    def b64(n: int) -> str:
        return base64.b64encode(secrets.token_bytes(n)).decode().rstrip("=")

    return (f"$argon2{HASHER.type.name.lower()}$v={ARGON2_VERSION}$m={HASHER.memory_cost},"
            f"t={HASHER.time_cost},p={HASHER.parallelism}"
            f"${b64(HASHER.salt_len)}${b64(HASHER.hash_len)}")


def verify_password(stored_hash: str, password: str) -> bool:
    """True when ``password`` matches; never raises for a wrong password or a bad hash."""
    try:
        return HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return HASHER.check_needs_rehash(stored_hash)


def one_time_password() -> str:
    """A random password for first sign-in or a reset (the user must change it)."""
    alphabet = string.ascii_letters + string.digits
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(16))
        if any(c.isdigit() for c in candidate) and any(c.isalpha() for c in candidate):
            return candidate
