"""src/data/tokenizer.py: the RWKV World tokenizer of the `rwkv` package."""


def test_world_tokenizer_vector(world_tokenizer):
    tok = world_tokenizer
    ids = tok.encode("The Eiffel tower is in the city of")
    assert ids == [6699, 304, 25740, 109, 39990, 4600, 4596, 22590, 30449, 4706]
    assert tok.decode(ids) == "The Eiffel tower is in the city of"
    assert tok.vocab_size == 65536


def test_decode_never_raises_on_split_characters(world_tokenizer):
    tok = world_tokenizer
    ids = tok.encode("東京")
    assert tok.decode(ids) == "東京"
    assert isinstance(tok.decode(ids[:1] + [65000]), str)
