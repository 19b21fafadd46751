"""The offline corpora: real text, stable hashes, clear errors for bad files."""

import pytest

from minilm import corpus


def test_training_corpus_is_real_english_docstrings():
    train = corpus.train_corpus()
    assert train.n_bytes > 1_000_000
    assert "Return" in train.text and "def " not in train.text[:2000]
    assert len(train.sha256) == 64
    assert corpus.stdlib_docstrings().sha256 == train.sha256  # cached copy is identical


def test_held_out_corpus_is_the_language_reference():
    held_out = corpus.validation_corpus()
    assert 300_000 < held_out.n_bytes < 1_000_000
    assert "statement" in held_out.text
    assert held_out.sha256 != corpus.train_corpus().sha256


def test_any_utf8_file(tmp_path):
    path = tmp_path / "poem.txt"
    path.write_text("Ünïcödé text\n", encoding="utf-8")
    text = corpus.train_corpus(path)
    assert text.text == "Ünïcödé text\n" and text.name == "poem.txt"


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        corpus.load_text(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        corpus.load_text(tmp_path / "empty.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        corpus.load_text(tmp_path / "latin1.txt")
