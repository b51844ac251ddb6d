"""`reformer sample`'s work, per task: text continued and printed as it comes (enwik8, text), a PNG
grid of images drawn or completed (imagenet64), the duplication task's copy with its accuracy
(synthetic). Each returns the record `reformer sample` writes as sample.json."""

from __future__ import annotations

import codecs
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, TextIO

import torch

from ..errors import UserError
from ..loading import Trained
from ..tasks import task_spec, task_specs
from .image_grid import ROW_TOKENS, as_picture, grid, write_png
from .incremental import CachedDecoder, decoding_context
from .sampling import SamplingSettings, generate


@dataclass
class SampleRequest:
    prompt: bytes | None = None  # text tasks: bytes; synthetic: symbols as text ("5 17 3")
    length: int | None = None  # tokens to draw (default: what the task's sample needs, at most 200 bytes)
    temperature: float | None = None  # None: 1.0, or 0 (greedy) for the synthetic copy
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    count: int = 1
    complete: int = 0  # imagenet64: complete the first N images of the valid split instead of drawing
    prompt_rows: int | None = None  # imagenet64 completion: image rows given (default half the window's)
    scale: int = 4  # imagenet64: PNG pixels per image pixel


def settings_of(request: SampleRequest, greedy_default: bool = False) -> SamplingSettings:
    temperature = request.temperature if request.temperature is not None else (0.0 if greedy_default else 1.0)
    return SamplingSettings(temperature=float(temperature), top_k=int(request.top_k), top_p=float(request.top_p))


def check_request(request: SampleRequest) -> None:
    """The settings a user gives, each wrong one as one line."""
    if request.temperature is not None and not 0 <= request.temperature < float("inf"):  # nan too
        raise UserError(f"--temperature {request.temperature} must be a finite number >= 0 (0: the most likely"
                        " token)")
    if request.top_k < 0:
        raise UserError(f"--top-k {request.top_k} must be >= 0 (0: every token)")
    if not 0 < request.top_p <= 1:
        raise UserError(f"--top-p {request.top_p} must be in (0, 1]")
    if not -2**63 <= request.seed < 2**63:
        raise UserError(f"--seed {request.seed} must be an integer in [-2^63, 2^63)")
    if request.count < 1:
        raise UserError(f"--count {request.count} must be >= 1")
    if request.length is not None and request.length < 1:
        raise UserError(f"--length {request.length} must be >= 1")
    if request.prompt is not None and len(request.prompt) == 0:
        raise UserError("the prompt is empty (leave --prompt out to sample from the start token alone)")


def _room(trained: Trained, prompt_tokens: int, length: int, what: str) -> None:
    """UserError unless `prompt_tokens` + `length` targets fit the model's positions."""
    positions = trained.model.seq_len
    if prompt_tokens + length > positions:
        raise UserError(f"--length {length} after {what} needs {prompt_tokens + length} positions; this model has"
                        f" {positions} (the task.seq_len it was trained with): at most --length"
                        f" {max(positions - prompt_tokens, 0)}")


def _decoder(trained: Trained, batch: int, request: SampleRequest) -> CachedDecoder:
    eval_seed = int(trained.config.attention.get("eval_seed", 0) or 0)
    return CachedDecoder(trained.model, batch=batch, ctx=decoding_context(eval_seed, request.seed))


def _common(trained: Trained, request: SampleRequest, settings: SamplingSettings) -> dict[str, Any]:
    from datetime import datetime, timezone

    from ..naming import attention_label
    from ..records import code_version

    return {
        "kind": "sample",
        "checkpoint": str(trained.checkpoint),
        "step": trained.step,
        "task": trained.config.task.name,
        "attention": attention_label(trained.config.attention),
        "layer": str(trained.config.layer.name),
        "sampling": asdict(settings),
        "seed": request.seed,
        "count": request.count,
        "decoding": "cached: one query per token against each layer's keys, values and LSH buckets",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "code_version": code_version(),
    }


# ------------------------------------------------------------------------------ text


def sample_text(trained: Trained, request: SampleRequest, out_dir: Path, stdout: TextIO) -> dict:
    from ..tasks.bytes import START

    prompt = request.prompt or b""
    length = request.length if request.length is not None else min(200, trained.model.seq_len - len(prompt))
    _room(trained, len(prompt), length, f"a prompt of {len(prompt)} bytes")
    settings = settings_of(request)
    generator = torch.Generator().manual_seed(request.seed)
    shown = prompt.decode("utf-8", "backslashreplace")
    samples = []
    for k in range(request.count):
        stdout.write(f"--- sample {k + 1}/{request.count}\n{shown}")
        stdout.flush()
        tokens = torch.tensor([[START, *prompt]], device=trained.model.embed.weight.device)
        drawn, text = bytearray(), codecs.getincrementaldecoder("utf-8")("replace")
        for token in generate(_decoder(trained, 1, request), tokens, length, settings, generator, forbidden=(START,)):
            drawn.append(int(token[0]))
            stdout.write(text.decode(bytes(drawn[-1:])))  # a multi-byte character shows once it is whole
            stdout.flush()
        stdout.write(text.decode(b"", final=True) + "\n")  # a character cut off at the end
        samples.append({"text": bytes(drawn).decode("utf-8", "replace"), "hex": bytes(drawn).hex(), "bytes": len(drawn)})
    return {**_common(trained, request, settings), "prompt": shown, "prompt_bytes": len(prompt), "length": length,
            "samples": samples}


# ------------------------------------------------------------------------------ images


def sample_images(trained: Trained, request: SampleRequest, out_dir: Path, stdout: TextIO) -> dict:
    from ..tasks.imagenet64 import START

    window = trained.model.seq_len
    settings = settings_of(request)
    generator = torch.Generator().manual_seed(request.seed)
    device = trained.model.embed.weight.device
    record = _common(trained, request, settings)
    if request.complete:
        rows = window // ROW_TOKENS
        given = request.prompt_rows if request.prompt_rows is not None else rows // 2
        if not 1 <= given < rows:
            raise UserError(f"--prompt-rows {given}: this model's windows hold {rows} image rows ({window} tokens);"
                            " give between 1 and one less than that" if rows >= 2 else
                            f"this model's windows ({window} tokens) hold less than two image rows: nothing to complete")
        images = trained.task.images("valid")
        if request.complete > images.shape[0]:
            raise UserError(f"--complete {request.complete}: the valid split has {images.shape[0]} images")
        originals = torch.as_tensor(images[: request.complete, :window].astype("int64"))
        prompt = originals[:, : given * ROW_TOKENS]
        length = window - prompt.shape[1]
        start = torch.full((request.complete, 1), START, dtype=torch.long)
        inputs = torch.cat([start, prompt], dim=1).to(device)
        drawn = torch.stack(list(generate(_decoder(trained, request.complete, request), inputs, length, settings,
                                          generator)), dim=1).cpu()
        completed = torch.cat([prompt, drawn], dim=1)
        pictures = [torch.cat([torch.as_tensor(as_picture(o.numpy())), torch.as_tensor(as_picture(c.numpy()))], dim=1)
                    .numpy() for o, c in zip(originals, completed)]
        record.update(mode="complete", prompt_rows=given, samples=[c.tolist() for c in completed])
        what = f"{request.complete} valid images completed from their upper {given} rows (left original, right model)"
    else:
        length = request.length or window
        _room(trained, 0, length, "the start token")
        start = torch.full((request.count, 1), START, dtype=torch.long, device=device)
        drawn = torch.stack(list(generate(_decoder(trained, request.count, request), start, length, settings,
                                          generator)), dim=1).cpu()
        pictures = [as_picture(d.numpy()) for d in drawn]
        record.update(mode="draw", length=length, samples=[d.tolist() for d in drawn])
        what = f"{request.count} images drawn"
    columns = max(1, int(len(pictures) ** 0.5 + 0.999))
    picture = grid(pictures, columns)
    png = out_dir / "samples.png"
    write_png(png, picture, request.scale)
    record.update(png=str(png), grid_pixels=[picture.shape[0], picture.shape[1]], window_tokens=window)
    stdout.write(f"{what}: {png} ({picture.shape[1]}x{picture.shape[0]} pixels before the x{request.scale} scale)\n")
    return record


# ------------------------------------------------------------------------------ the duplication task


def sample_copies(trained: Trained, request: SampleRequest, out_dir: Path, stdout: TextIO) -> dict:
    from ..tasks.synthetic import SEPARATOR

    task = trained.task
    if request.prompt is not None:
        words = [_symbols(request.prompt, task.vocab_size, task.word_len)]
    else:
        sequences = next(iter(task.eval_batches("valid", request.count, 1))).targets
        words = [seq[1 : 1 + task.word_len].tolist() for seq in sequences]
    settings = settings_of(request, greedy_default=True)
    generator = torch.Generator().manual_seed(request.seed)
    device = trained.model.embed.weight.device
    copies, correct, total = [], 0, 0
    for w in words:  # the model reads shift_right(0 w 0 w): the start token 0, then 0 w 0, then copies
        inputs = torch.tensor([[SEPARATOR, SEPARATOR, *w, SEPARATOR]], device=device)
        drawn = [int(t[0]) for t in generate(_decoder(trained, 1, request), inputs, len(w), settings, generator)]
        hits = sum(a == b for a, b in zip(drawn, w))
        correct, total = correct + hits, total + len(w)
        stdout.write(f"w     {' '.join(map(str, w))}\ncopy  {' '.join(map(str, drawn))}   ({hits}/{len(w)} copied)\n")
        copies.append({"w": w, "copy": drawn, "accuracy": hits / len(w)})
    accuracy = correct / total
    stdout.write(f"copy accuracy {accuracy:.4f} over {len(words)} sequence(s) of {total} symbols"
                 f" ({'greedy' if settings.temperature == 0 else f'temperature {settings.temperature}'})\n")
    return {**_common(trained, request, settings), "copies": copies, "accuracy": accuracy}


def _symbols(prompt: bytes, vocab_size: int, word_len: int) -> list[int]:
    """The symbols of a synthetic prompt ("5 17 3"), each in 1..vocab_size - 1."""
    try:
        symbols = [int(s) for s in prompt.decode("utf-8", "replace").replace(",", " ").split()]
    except ValueError:
        raise UserError(f"the synthetic prompt {prompt.decode('utf-8', 'replace')!r} is not a list of symbols"
                        f" (integers 1..{vocab_size - 1}, e.g. '5 17 3')") from None
    outside = [s for s in symbols if not 1 <= s < vocab_size]
    if outside:
        raise UserError(f"the prompt's symbol {outside[0]} is outside this model's vocabulary (1..{vocab_size - 1};"
                        " 0 is the separator)")
    if len(symbols) > word_len:
        raise UserError(f"the prompt has {len(symbols)} symbols; this model copies words of at most {word_len}")
    return symbols


# by what the task's spec says it samples (TaskSpec.samples)
SAMPLERS: dict[str, Callable[[Trained, SampleRequest, Path, TextIO], dict]] = {
    "text": sample_text, "images": sample_images, "copies": sample_copies,
}


def sample(trained: Trained, request: SampleRequest, out_dir: Path, stdout: TextIO = sys.stdout) -> dict:
    """Sample as the run's task does, write `out_dir`/sample.json (and samples.png), return the record."""
    from ..records import check_writable, write_json_atomic

    check_request(request)
    name = str(trained.config.task.name)
    kind = task_spec(name).samples
    if kind not in SAMPLERS:
        sampled = ", ".join(spec.name for spec in task_specs() if spec.samples in SAMPLERS)
        raise UserError(f"no sampling for task '{name}' (sampled: {sampled})")
    if request.prompt is not None and kind == "images":
        raise UserError(f"{name} takes no text prompt: --complete N completes valid images from their upper rows")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} is a file, not a folder: sample.json cannot be written in it")
    out_dir.mkdir(parents=True, exist_ok=True)
    check_writable(out_dir / "sample.json")
    trained.model.eval()
    record = SAMPLERS[kind](trained, request, out_dir, stdout)
    write_json_atomic(out_dir / "sample.json", record)
    stdout.write(f"written: {out_dir / 'sample.json'}\n")
    return record


__all__ = ["SampleRequest", "sample"]
