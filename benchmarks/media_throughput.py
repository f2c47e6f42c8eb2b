"""Media throughput: images/s and audio clips/s through SQL, against a plain loop, same model.

1. images: SELECT path, embed(path) FROM read_media('<dir>/*')   (imagenet-minilm-bridge)
2. audio:  SELECT path, transcribe(path) FROM read_media('<dir>/*')   (Whisper tiny.en)

Each folder holds distinct files (small deterministic variations of the sample media, so the
result cache cannot dedupe). The engine runs on a fresh in-memory connection each time (nothing
cached) and is timed over execute + fetch_arrow_table. The plain loop uses the same loaded model
and batch size: per batch it reads the files, prepares (decodes + preprocesses) each one and runs
the kernel, sequentially in one thread. Decode is in both. Runs are interleaved, and each line
gives the median; "engine / plain" is a speed ratio (engine items/s divided by plain items/s).

--memory adds a check of peak RSS growth while the engine embeds image folders of two sizes
(--memory-images and 4x that), next to the plain loop on the smaller one (the model's own working
memory): the engine reads and decodes a bounded chunk of files at a time, so beyond the result
its peak should not grow with the folder. Its timings are not throughput figures (the allocator
is trimmed before each run, so pages fault in again).

Run: .venv/bin/python benchmarks/media_throughput.py [--images 256] [--clips 24] [--repeats 3]
     [--device cpu|cuda] [--memory [--memory-images 256]]
The defaults take about 3 minutes on 2 CPU cores (with --memory); on a GPU use more files, e.g.
--images 4096 --clips 256, so that each run lasts long enough to time.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import hashlib
import io
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import soundfile  # noqa: E402
import torch  # noqa: E402

import quarrydb  # noqa: E402
from quarrydb.connectors.sample_media import write_sample_media  # noqa: E402
from quarrydb.engine import executor  # noqa: E402
from quarrydb.udfs import Binding, default_registry, loaded_models  # noqa: E402

# --- test media -----------------------------------------------------------------------------------


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_images(sources: list[str], folder: Path, count: int) -> list[str]:
    """`count` distinct images: random (seeded) crop, flip, quarter turn and brightness of the
    sample images, at most 512 px a side; three in four saved as JPEG, one in four as PNG."""
    from PIL import Image, ImageEnhance, ImageOps

    folder.mkdir(parents=True, exist_ok=True)
    originals = []
    for path in sources:
        with Image.open(path) as img:
            originals.append(img.convert("RGB"))
    seen: set[str] = set()
    paths = []
    for i in range(count):
        rng = random.Random(i)
        img = originals[i % len(originals)]
        w, h = img.size
        box = (
            int(w * rng.uniform(0, 0.15)), int(h * rng.uniform(0, 0.15)),
            int(w * rng.uniform(0.85, 1)), int(h * rng.uniform(0.85, 1)),
        )
        out = img.crop(box)
        if rng.random() < 0.5:
            out = ImageOps.mirror(out)
        out = out.rotate(90 * rng.randrange(4), expand=True)
        out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.8, 1.2))
        out.thumbnail((512, 512), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        suffix = "png" if i % 4 == 3 else "jpg"
        if suffix == "png":
            out.save(buffer, "PNG")
        else:
            out.save(buffer, "JPEG", quality=90)
        paths.append(_write_distinct(buffer.getvalue(), folder / f"img_{i:05d}.{suffix}", seen))
    return paths


def _write_distinct(data: bytes, path: Path, seen: set[str]) -> str:
    """Write one benchmark file; its content must differ from every earlier one, or the cache
    would serve it and the engine would be timed on less work than the loop."""
    if _digest(data) in seen:
        raise RuntimeError(f"{path.name} duplicates an earlier file")
    seen.add(_digest(data))
    path.write_bytes(data)
    return str(path)


def make_clips(sources: list[str], folder: Path, count: int) -> list[str]:
    """`count` distinct WAV clips (16-bit, each source's own rate): the distinct speech
    recordings in turn, each repeat with a different gain and 5 ms more leading silence."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    originals, heard = [], set()
    for path in sources:  # the weather WAV and FLAC hold the same audio: keep one
        samples, rate = sf.read(path, dtype="float32", always_2d=True)
        key = _digest(samples.tobytes() + str(rate).encode())
        if key not in heard:
            heard.add(key)
            originals.append((samples, rate))
    seen: set[str] = set()
    paths = []
    for i in range(count):
        (samples, rate), k = originals[i % len(originals)], i // len(originals)
        mono = samples.mean(axis=1)
        gain = 0.95 - 0.07 * (k % 8)
        silence = np.zeros(int(rate * (0.005 + 0.005 * k)), dtype=np.float32)
        wave = np.clip(np.concatenate([silence, mono * gain]), -1.0, 1.0)
        buffer = io.BytesIO()
        sf.write(buffer, wave, rate, subtype="PCM_16", format="WAV")
        paths.append(_write_distinct(buffer.getvalue(), folder / f"clip_{i:04d}.wav", seen))
    return paths


# --- the two contenders ---------------------------------------------------------------------------


def run_engine(
    folder: Path, function: str, count: int, device: str, batch: int | None
) -> tuple[float, pa.Table, dict[str, Any]]:
    """One fresh in-memory connection: seconds for execute + fetch, the result, the stats."""
    con = quarrydb.connect()
    cur = con.cursor()
    cur.execute(f"SET device = '{device}'")
    if batch:
        cur.execute(f"SET model_batch_size = {batch}")
    pattern = str(folder / "*").replace("'", "''")
    started = time.perf_counter()
    cur.execute(f"SELECT path, {function}(path) AS out FROM read_media('{pattern}')")
    table = cur.fetch_arrow_table()
    elapsed = time.perf_counter() - started
    stats = cur.stats
    if table.num_rows != count or stats["model_inputs"] != count or stats["cache_hits"]:
        raise RuntimeError(f"engine did not compute each file once: {table.num_rows} rows, {stats}")
    con.close()
    return elapsed, table, stats


def warm_engine(
    paths: list[str], folder: Path, function: str, device: str, batch: int | None
) -> None:
    """One engine query over a few of the files (linked into a folder of their own)."""
    folder.mkdir(exist_ok=True)
    for p in paths:
        (folder / Path(p).name).symlink_to(p)
    run_engine(folder, function, len(paths), device, batch)


def run_plain(
    binding: Binding, loaded: Any, paths: list[str], batch: int
) -> tuple[float, list[Any], float, float]:
    """The same model in a loop, one thread: seconds, outputs, seconds preparing, in kernels."""
    prepare, kernel = binding.implementation.prepare, binding.implementation.kernel
    outputs: list[Any] = []
    preparing = computing = 0.0
    started = time.perf_counter()
    for start in range(0, len(paths), batch):
        t0 = time.perf_counter()
        prepared = [prepare(loaded, Path(p).read_bytes()) for p in paths[start : start + batch]]
        t1 = time.perf_counter()
        outputs.extend(kernel(loaded, prepared, {"batch_size": batch}))
        preparing += t1 - t0
        computing += time.perf_counter() - t1
    return time.perf_counter() - started, outputs, preparing, computing


def compare(
    label: str,
    unit: str,
    folder: Path,
    paths: list[str],
    function: str,
    binding: Binding,
    device: str,
    batch: int,
    repeats: int,
    agree: Callable[[dict[str, Any], dict[str, Any]], str],
) -> list[str]:
    loaded = loaded_models.get_model(binding.model, device)
    loads = loaded_models.load_count
    run_plain(binding, loaded, paths[:batch], batch)  # one batch: threads, kernels, allocator
    warm_engine(paths[:batch], folder.parent / f"{folder.name}_warm", function, device, batch)

    engine: list[float] = []
    plain: list[float] = []
    reading: list[float] = []
    model: list[float] = []
    preparing: list[float] = []
    kernels: list[float] = []
    agreement = ""
    for r in range(repeats):  # interleaved, alternating who goes first, so drift hits both alike
        for who in ("engine", "plain") if r % 2 == 0 else ("plain", "engine"):
            gc.collect()
            if who == "engine":
                seconds, table, stats = run_engine(folder, function, len(paths), device, batch)
                engine.append(seconds)
                stage = stats["stages"][0]
                reading.append(stage["seconds_read"])
                model.append(stage["seconds_model"])
                engine_out = dict(zip(table.column("path").to_pylist(),
                                      table.column("out").to_pylist()))
            else:
                seconds, outputs, prep, kern = run_plain(binding, loaded, paths, batch)
                plain.append(seconds)
                preparing.append(prep)
                kernels.append(kern)
                plain_out = dict(zip(paths, outputs))
        if r == 0:
            agreement = agree(engine_out, plain_out)
    if loaded_models.load_count != loads:
        raise RuntimeError("the engine loaded its own copy of the model: timings include a load")

    n = len(paths)
    e, p = statistics.median(engine), statistics.median(plain)
    return [
        f"{label}: {n} distinct files, {binding.model.name}, batch {batch}, repeats {repeats}",
        f"  quarrydb SQL : {e:7.2f} s  {n / e:8.1f} {unit}/s  runs {[round(x, 2) for x in engine]}"
        f"  (stage: read {statistics.median(reading):.2f} s,"
        f" prepare+model {statistics.median(model):.2f} s)",
        f"  plain loop   : {p:7.2f} s  {n / p:8.1f} {unit}/s  runs {[round(x, 2) for x in plain]}"
        f"  (read+prepare {statistics.median(preparing):.2f} s,"
        f" kernel {statistics.median(kernels):.2f} s)",
        f"  engine / plain speed: {p / e:.3f}   outputs: {agreement}",
    ]


def agree_vectors(engine: dict[str, Any], plain: dict[str, Any]) -> str:
    diff = max(
        float(np.abs(np.asarray(engine[k], dtype=np.float32) - np.asarray(v)).max())
        for k, v in plain.items()
    )
    return f"max |engine - plain| = {diff:.2g}"


def agree_texts(engine: dict[str, Any], plain: dict[str, Any]) -> str:
    same = sum(engine[k] == v for k, v in plain.items())
    return f"{same}/{len(plain)} transcripts identical"


# --- memory ---------------------------------------------------------------------------------------


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset VmHWM (peak RSS) to the current RSS: Linux >= 4.0, writing 5 to clear_refs."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    hwm, rss = _status_kb("VmHWM"), _status_kb("VmRSS")
    return hwm is not None and rss is not None and hwm <= rss + 4096


def _trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc: hand freed heap back, for a clean base
    except (OSError, AttributeError):
        pass


def measure_memory(work: Callable[[], Any], resettable: bool, device: str) -> tuple[Any, str]:
    """Run `work`; what it returns, and its peak RSS (and CUDA memory) above the RSS before."""
    _trim()
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        cuda_before = torch.cuda.memory_allocated()
    if resettable:
        _reset_peak()
        before = _status_kb("VmRSS") or 0
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = work()
    peak = (_status_kb("VmHWM") if resettable
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) or 0
    _trim()  # what stays: freed memory handed back first
    after = _status_kb("VmRSS") or 0
    shown = (f"peak RSS +{(peak - before) / 1024:6.1f} MiB,"
             f" after +{(after - before) / 1024:6.1f} MiB")
    if cuda:
        extra = (torch.cuda.max_memory_allocated() - cuda_before) / 2**20
        shown += f", CUDA peak +{extra:6.1f} MiB"
    return result, shown


def memory_check(
    sources: list[str], root: Path, base: int, binding: Binding, device: str
) -> list[str]:
    sizes = [base, 4 * base]
    folders = []
    for size in sizes:
        folder = root / f"mem_{size}"
        make_images(sources, folder, size)
        folders.append(folder)
    batch = binding.model.batch_size
    loaded = loaded_models.get_model(binding.model, device)
    small = sorted(str(p) for p in folders[0].iterdir())
    run_plain(binding, loaded, small[:batch], batch)
    warm_engine(small[:batch], root / "mem_warm", "embed", device, None)  # pools, thread stacks
    resettable = _reset_peak()
    how = "VmHWM reset before each" if resettable else "ru_maxrss, never reset: a lower bound"
    lines = [
        f"memory: growth over the RSS just before each run ({how}); executor chunk"
        f" {executor.MEDIA_CHUNK} files, batch {batch}",
    ]
    (_, _, _, _), shown = measure_memory(
        lambda: run_plain(binding, loaded, small, batch), resettable, device
    )
    files_mb = sum(Path(p).stat().st_size for p in small) / 2**20
    lines.append(f"  plain loop {sizes[0]:5d} images ({files_mb:5.1f} MiB of files): {shown}"
                 "   <- the model's own working memory")
    for size, folder in zip(sizes, folders):
        files_mb = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
        (seconds, table, _), shown = measure_memory(
            lambda f=folder, n=size: run_engine(f, "embed", n, device, None), resettable, device
        )
        lines.append(f"  quarrydb   {size:5d} images ({files_mb:5.1f} MiB of files): {shown};"
                     f" result {table.nbytes / 2**20:4.2f} MiB, {seconds:5.1f} s")
        del table
    return lines


# --- main -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default_device, help=f"default: {default_device}")
    parser.add_argument("--images", type=int, default=256, help="distinct images (default 256)")
    parser.add_argument("--clips", type=int, default=24, help="distinct clips (default 24)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-batch", type=int, default=None, help="default: the model's")
    parser.add_argument("--audio-batch", type=int, default=None, help="default: the model's")
    parser.add_argument("--skip-images", action="store_true")
    parser.add_argument("--skip-audio", action="store_true")
    parser.add_argument("--memory", action="store_true", help="also run the memory check")
    parser.add_argument("--memory-images", type=int, default=256,
                        help="smaller folder of the memory check; the larger is 4x (default 256)")
    args = parser.parse_args()
    started = time.perf_counter()

    registry = default_registry()
    image_binding = registry.bind("embed", None, "image")
    audio_binding = registry.bind("transcribe", None, "audio")
    image_batch = args.image_batch or image_binding.model.batch_size
    audio_batch = args.audio_batch or audio_binding.model.batch_size
    gpu = f" ({torch.cuda.get_device_name(0)})" if args.device.startswith("cuda") else ""
    print(f"device {args.device}{gpu}  torch {torch.__version__}  torch_threads"
          f" {torch.get_num_threads()}  cpus {os.cpu_count()}  engine workers {executor.WORKERS}")
    print(f"load average at start {os.getloadavg()[0]:.2f} (other work on the machine skews runs)")
    print(f"batch sizes: images {image_batch} ({image_binding.model.name}),"
          f" audio {audio_batch} ({audio_binding.model.name})")
    sys.stdout.flush()

    with tempfile.TemporaryDirectory(prefix="media_bench_") as tmp:
        root = Path(tmp)
        sample = write_sample_media(root / "sample")
        image_sources = sorted(sample.images)
        clip_sources = sorted(p for p in sample.speech)
        load_started = time.perf_counter()
        if not args.skip_images:
            loaded_models.get_model(image_binding.model, args.device)
        if not args.skip_audio:
            loaded_models.get_model(audio_binding.model, args.device)
        print(f"models loaded in {time.perf_counter() - load_started:.1f} s (not timed below)")
        print()
        if not args.skip_images:
            paths = make_images(image_sources, root / "images", args.images)
            size = sum(Path(p).stat().st_size for p in paths) / 2**20
            print(f"(images: {len(paths)} from {len(image_sources)} samples, {size:.1f} MiB,"
                  " JPEG q90 / PNG, <= 512 px)")
            lines = compare("images", "images", root / "images", paths, "embed", image_binding,
                            args.device, image_batch, args.repeats, agree_vectors)
            print("\n".join(lines), flush=True)
            print()
        if not args.skip_audio:
            paths = make_clips(clip_sources, root / "audio", args.clips)
            seconds = sum(soundfile.info(p).duration for p in paths)
            print(f"(audio: {len(paths)} clips from the distinct speech samples,"
                  f" {seconds:.0f} s of audio, WAV 16-bit at 16 / 22.05 kHz)")
            lines = compare("audio", "clips", root / "audio", paths, "transcribe", audio_binding,
                            args.device, audio_batch, args.repeats, agree_texts)
            print("\n".join(lines), flush=True)
            print()
        if args.memory:
            lines = memory_check(image_sources, root, args.memory_images, image_binding,
                                 args.device)
            print("\n".join(lines))
            print()
    print(f"total {time.perf_counter() - started:.0f} s; load average at end"
          f" {os.getloadavg()[0]:.2f} (1 min), {os.getloadavg()[1]:.2f} (5 min)")


if __name__ == "__main__":
    main()
