"""Corpora, the character tokenizer, and the random streams that make runs comparable.

Every batch is built on the CPU from its own seeded `torch.Generator` and only then moved
to the device, so every device and dtype trains and is scored on the same token ids.
Streams are independent: changing eval.iters never changes the training batches (a trap
in nanoGPT, where both draw from one global RNG).
"""

from __future__ import annotations

import hashlib
import lzma
import os
import random
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

from nanobench import files
from nanobench.errors import InputError

DATA_DIR_ENV = "NANOBENCH_DATA_DIR"
URL_ENV = "NANOBENCH_TINYSHAKESPEARE_URL"  # a mirror; the file is still checked by sha256
TINYSHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
TINYSHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
# The corpus ships inside the package (xz, 364 KB), so the default scenario runs on a machine
# with no data folder and no network; it is checked by sha256 after decompression like any copy.
SHIPPED_TINYSHAKESPEARE = Path(__file__).resolve().parent / "corpora" / "tinyshakespeare.txt.xz"
DOWNLOAD_TIMEOUT_S = 5.0
TRAIN_FRACTION = 0.9
# Evaluation batches come from this fixed seed, not the run's: every run of a scenario,
# whatever its seed or device, is scored on the same text, so seed-to-seed spread is the
# model's, not the evaluation sample's.
EVAL_SEED = 0


def derive_seed(seed: int, stream: str, index: int = 0) -> int:
    """A 63-bit seed for (run seed, stream name, index), stable across platforms and runs.

    Hashing (rather than seed + index) keeps streams from overlapping: the training batch
    of seed 1337 at iteration 1 is not the batch of seed 1338 at iteration 0.
    """
    digest = hashlib.blake2b(f"{seed}/{stream}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def generator(seed: int, stream: str, index: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, stream, index))


@dataclass(frozen=True)
class Dataset:
    name: str
    source: str  # where the text came from (a path or a URL)
    sha256: str
    n_chars: int
    vocab: str  # sorted unique characters; token id = index in this string
    train: torch.Tensor  # (n_train,) int64 token ids
    val: torch.Tensor  # (n_val,) int64 token ids

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def identity(self) -> dict:
        """What result files record, so that runs on different text are never compared."""
        return {
            "name": self.name,
            "source": self.source,
            "sha256": self.sha256,
            "n_chars": self.n_chars,
            "vocab_size": self.vocab_size,
            "n_train_tokens": int(self.train.numel()),
            "n_val_tokens": int(self.val.numel()),
        }

    def encode(self, text: str) -> list[int]:
        index = {c: i for i, c in enumerate(self.vocab)}
        missing = sorted(set(text) - set(index))
        if missing:
            raise InputError(
                f"text holds characters not in the {self.name} vocabulary: {missing!r}"
            )
        return [index[c] for c in text]

    def decode(self, ids) -> str:
        return "".join(self.vocab[i] for i in ids)


def _from_text(name: str, source: str, text: str) -> Dataset:
    vocab = "".join(sorted(set(text)))
    index = {c: i for i, c in enumerate(vocab)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.int64)
    n_train = int(len(ids) * TRAIN_FRACTION)
    return Dataset(
        name=name,
        source=source,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        n_chars=len(text),
        vocab=vocab,
        train=ids[:n_train],
        val=ids[n_train:],
    )


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _shipped_tinyshakespeare() -> str | None:
    """The copy inside the package, decompressed, if it is there and intact."""
    try:
        payload = lzma.decompress(SHIPPED_TINYSHAKESPEARE.read_bytes())
    except (OSError, lzma.LZMAError):
        return None
    if hashlib.sha256(payload).hexdigest() != TINYSHAKESPEARE_SHA256:
        return None  # a damaged install: fall through to the download, which says why if it fails
    return payload.decode("utf-8")


def _tinyshakespeare_text(data_dir: str | None, url: str, timeout_s: float) -> tuple[str, str]:
    """(source, text): the local data directory, else the cache, else the copy shipped in the
    package, else a verified download into the cache."""
    if data_dir:
        for candidate in (
            Path(data_dir) / "tinyshakespeare" / "input.txt",
            Path(data_dir) / "input.txt",
        ):
            if candidate.is_file():
                if _sha256_file(candidate) != TINYSHAKESPEARE_SHA256:
                    raise InputError(
                        f"{candidate}: sha256 does not match tinyshakespeare "
                        f"({TINYSHAKESPEARE_SHA256[:12]}...); replace it with the original file"
                    )
                return str(candidate), candidate.read_text(encoding="utf-8")
    cached = files.cache_dir() / "tinyshakespeare" / "input.txt"
    if cached.is_file() and _sha256_file(cached) == TINYSHAKESPEARE_SHA256:
        return str(cached), cached.read_text(encoding="utf-8")
    shipped = _shipped_tinyshakespeare()
    if shipped is not None:
        return f"{SHIPPED_TINYSHAKESPEARE.name} (shipped with nanobench)", shipped
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            payload = response.read()
    except Exception as exc:  # URLError, timeout, DNS failure, HTTP error: all mean "no copy"
        looked = f"{data_dir}/tinyshakespeare/input.txt" if data_dir else f"${DATA_DIR_ENV} (unset)"
        raise InputError(
            f"dataset 'tinyshakespeare' not found: looked in {looked}, {cached} and the package's "
            f"shipped copy ({SHIPPED_TINYSHAKESPEARE.name}: missing or damaged), and the download from {url} "
            f"failed ({type(exc).__name__}: {exc}); set {DATA_DIR_ENV} to a folder holding tinyshakespeare/input.txt"
        ) from None
    digest = hashlib.sha256(payload).hexdigest()
    if digest != TINYSHAKESPEARE_SHA256:
        raise InputError(
            f"dataset 'tinyshakespeare' downloaded from {url} has sha256 {digest[:12]}..., "
            f"expected {TINYSHAKESPEARE_SHA256[:12]}...; not used. "
            f"Set {DATA_DIR_ENV} to a folder holding a verified tinyshakespeare/input.txt"
        )
    cached.parent.mkdir(parents=True, exist_ok=True)
    files.write_atomic(cached, payload)  # a half-written cache file is never seen
    return str(cached), payload.decode("utf-8")


def synthetic_text(n_chars: int = 60_000, seed: int = 0) -> str:
    """Small English-like text with learnable structure, identical on every machine.

    Its seed is fixed (not the run's seed), so every run of a scenario sees the same corpus
    and dataset hash: seeds vary the model, not the data.
    """
    rng = random.Random(seed)
    subjects = ["the cat", "a dog", "the king", "my lord", "the queen", "a fool", "the sea"]
    verbs = ["sees", "loves", "fears", "holds", "takes", "hears", "calls"]
    objects = ["the moon", "a rose", "the crown", "his sword", "her name", "the night", "a song"]
    out: list[str] = []
    length = 0
    while length < n_chars:
        sentence = f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}."
        sentence = sentence[0].upper() + sentence[1:] + ("\n" if rng.random() < 0.2 else " ")
        out.append(sentence)
        length += len(sentence)
    return "".join(out)[:n_chars]


def load_dataset(
    dataset: str,
    *,
    data_dir: str | None = None,
    url: str | None = None,
    timeout_s: float = DOWNLOAD_TIMEOUT_S,
) -> Dataset:
    """`tinyshakespeare`, `synthetic`, or a path to a UTF-8 text file."""
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV) or None
    url = url or os.environ.get(URL_ENV) or TINYSHAKESPEARE_URL
    if dataset == "tinyshakespeare":
        source, text = _tinyshakespeare_text(data_dir, url, timeout_s)
        return _from_text("tinyshakespeare", source, text)
    if dataset == "synthetic":
        return _from_text("synthetic", "synthetic_text(60000, seed=0)", synthetic_text())
    path = Path(dataset)
    if not path.is_file():
        raise InputError(
            f"data.dataset: '{dataset}' is neither 'tinyshakespeare', 'synthetic' nor an existing file"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: not UTF-8 text (byte {exc.start}); data.dataset needs a UTF-8 file"
        ) from None
    if len(text) < 100:
        raise InputError(f"{path}: only {len(text)} characters; a dataset needs at least 100")
    return _from_text(path.stem, str(path), text)


def _windows(ids: torch.Tensor, block_size: int, split: str) -> torch.Tensor:
    """(n_windows, block_size + 1) view over ids: row i is ids[i : i + block_size + 1]."""
    if ids.numel() < block_size + 2:
        raise InputError(
            f"model.block_size = {block_size} does not fit the {split} split "
            f"({ids.numel()} tokens); use a smaller block_size or a larger dataset"
        )
    # nanoGPT draws starts from [0, len - block_size); the last window keeps a target token.
    return ids.unfold(0, block_size + 1, 1)[: ids.numel() - block_size]


class Batches:
    """Training batches for iteration `it` and fixed evaluation batches, all on the CPU."""

    def __init__(
        self, dataset: Dataset, batch_size: int, block_size: int, grad_accum: int, seed: int
    ):
        self.batch_size = batch_size
        self.grad_accum = grad_accum
        self.seed = seed
        self._windows = {
            "train": _windows(dataset.train, block_size, "train"),
            "val": _windows(dataset.val, block_size, "val"),
        }
        # A batch holding more tokens than a split repeats text within one step: the split is
        # too small for the scenario, which is a mistake to say now, not after training.
        tokens = batch_size * block_size
        for split, ids in (("train", dataset.train), ("val", dataset.val)):
            if tokens > ids.numel():
                raise InputError(
                    f"train.batch_size x model.block_size = {batch_size} x {block_size} = {tokens} tokens "
                    f"is larger than the {split} split of '{dataset.name}' ({ids.numel()} tokens); "
                    f"use a smaller batch or a larger dataset"
                )

    def _draw(self, split: str, n: int, gen: torch.Generator) -> torch.Tensor:
        windows = self._windows[split]
        ix = torch.randint(windows.shape[0], (n,), generator=gen)
        return windows[ix]  # (n, T + 1), a copy

    def train(self, it: int) -> tuple[torch.Tensor, torch.Tensor]:
        """x, y of shape (grad_accum, batch_size, T): the whole global batch of iteration it.

        Seeded from (seed, it) alone, so a resumed run or another rank draws the same batch.
        """
        w = self._draw(
            "train", self.grad_accum * self.batch_size, generator(self.seed, "train", it)
        )
        w = w.view(self.grad_accum, self.batch_size, -1)
        # Contiguous copies, not views: a pinned non-blocking copy of a strided view is staged
        # through pageable memory by PyTorch, and the host then waits for the GPU every step.
        return w[..., :-1].contiguous(), w[..., 1:].contiguous()

    def fixed(self, split: str, n_batches: int) -> torch.Tensor:
        """(n_batches, batch_size, T + 1): the evaluation set of a split, the same every run."""
        w = self._draw(split, n_batches * self.batch_size, generator(EVAL_SEED, f"eval-{split}"))
        return w.view(n_batches, self.batch_size, -1)
