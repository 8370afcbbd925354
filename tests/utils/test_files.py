"""src/utils/files.py: load_tensor_file says in words why a file is not a .pth of tensors."""

import pickle
import re
import zipfile

import pytest
import torch

from src.utils.files import load_tensor_file


class NotATensor:
    pass


def saved(obj, **kw) -> bytes:
    def write(path):
        torch.save(obj, path, **kw)
        return path.read_bytes()
    return write


def zip_without_torch_records(path) -> bytes:
    with zipfile.ZipFile(path, "w") as f:
        f.writestr("notes/readme.txt", "hi")
    return path.read_bytes()


GOOD = {"blocks.0.att.time_state": torch.zeros(2, 8, 8)}

CASES = [
    (lambda p: b"", r"empty file \(0 bytes\)"),
    (lambda p: b"101", r"not a torch \.pth \(zip\) file: it starts with b'101' \(3 bytes\)"),
    (lambda p: b"hello world\n", r"not a torch \.pth \(zip\) file: it starts with b'hello wo' \(12 bytes\)"),
    (lambda p: saved(GOOD)(p)[:300], r"truncated: a zip archive without its end \(300 bytes; torch\.save writes"),
    (lambda p: saved(GOOD)(p)[:-10], r"truncated: a zip archive without its end"),
    (lambda p: saved(GOOD, _use_new_zipfile_serialization=False)(p)[:-20], r"truncated: the file ends early"),
    (lambda p: pickle.dumps({"a": NotATensor}, protocol=2), r"a Python pickle holding objects other than tensors"),
    (zip_without_torch_records, r"a zip archive, but not a torch \.pth file"),
]


@pytest.mark.parametrize("content, reason", CASES)
def test_an_unreadable_file_gives_its_reason_in_words(tmp_path, content, reason):
    path = tmp_path / "state.pth"
    path.write_bytes(content(path))
    with pytest.raises(ValueError) as e:
        load_tensor_file(path, "state file")
    message = str(e.value)
    assert message.startswith(f"cannot read state file {path}: ")
    assert "\n" not in message
    reason_text = message[len(f"cannot read state file {path}: "):]
    assert re.match(reason, reason_text), reason_text


@pytest.mark.parametrize("kw", [{}, {"_use_new_zipfile_serialization": False}])
def test_a_good_file_of_either_format_is_read(tmp_path, kw):
    path = tmp_path / "state.pth"
    torch.save(GOOD, path, **kw)
    assert torch.equal(load_tensor_file(path, "state file")["blocks.0.att.time_state"], GOOD["blocks.0.att.time_state"])


def test_missing_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"state file .*nope\.pth does not exist"):
        load_tensor_file(tmp_path / "nope.pth", "state file")
    with pytest.raises(ValueError, match=r"is a directory, not a \.pth file"):
        load_tensor_file(tmp_path, "state file")
