"""The RWKV World tokenizer (65536 tokens), from the maintained `rwkv` pip package.

    tok = WorldTokenizer()
    tok.encode("The Eiffel tower is in the city of")
    # [6699, 304, 25740, 109, 39990, 4600, 4596, 22590, 30449, 4706]
"""

from __future__ import annotations

from pathlib import Path

VOCAB_FILE = "rwkv_vocab_v20230424.txt"
VOCAB_SIZE = 65536


def world_vocab_path() -> Path:
    """The World vocabulary file the `rwkv` package ships (one token a line: id, Python literal, byte length)."""
    import rwkv   # the package root only; rwkv.model would read its environment variables
    return Path(rwkv.__file__).resolve().parent / VOCAB_FILE


class WorldTokenizer:
    def __init__(self) -> None:
        from rwkv.rwkv_tokenizer import TRIE_TOKENIZER

        self.vocab_path = world_vocab_path()
        self._tok = TRIE_TOKENIZER(str(self.vocab_path))

    @property
    def vocab_size(self) -> int:
        return VOCAB_SIZE

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text)

    def decode_bytes(self, tokens: list[int]) -> bytes:
        """The tokens' bytes (World tokens are byte strings; one may hold part of a UTF-8 character)."""
        return self._tok.decodeBytes(tokens)

    def decode(self, tokens: list[int]) -> str:
        """Undecodable byte sequences (a token that splits a UTF-8 character) become U+FFFD."""
        return self._tok.decodeBytes(tokens).decode("utf-8", errors="replace")
