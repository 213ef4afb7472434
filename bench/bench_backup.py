"""Backup and restore throughput of a volume against `docker cp` of the same data, same run.

    .venv/bin/python bench/bench_backup.py [--mb 1024] [--content random|mixed] [--level 1]

Fills a fresh volume with --mb MB (random bytes: incompressible, the worst case for gzip; or mixed:
half random, half text), then times:
  - Stackpilot's backup path (app/engine/archives.read_volume -> app/backups/streams.write_gzip: a
    created, never started busybox container with the volume read-only, the engine's archive
    stream gzipped to disk with its sha256) against `docker cp <ctr>:/data - > file.tar`;
  - Stackpilot's restore path (write_volume of the .tar.gz into an empty volume; to this local engine the
    upload goes on our own unix-socket connection, archives.put_archive_unix) against
    `docker cp - <ctr>:/` of the tar;
and the peak RSS of this process (it runs the same code the server runs) against its RSS before.
Goal: backup and restore >= 0.8x of docker cp; peak memory flat (streams, never buffers).
Each round prints its own figures and the load average (the machine may be shared); the table shows
the best of the rounds for each side. docker cp's tar goes through the page cache and is fsynced;
ours is written with O_DIRECT where the file system takes it (and fsynced), as the server does. The
restore row is the upload alone; the row under it adds the sha256 check of the archive that
jobs.restore makes before it stops anything.
Everything it creates is named spbench-* and removed at the end.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import row  # noqa: E402

from app.backups import streams  # noqa: E402
from app.backups.streams import read_gzip  # noqa: E402
from app.backups.streams import write_gzip  # noqa: E402
from app.engine import Engine  # noqa: E402
from app.engine import archives  # noqa: E402
from tests.support.images import ensure_busybox_image  # noqa: E402


def hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_now() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def docker(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], check=True, capture_output=True, **kw)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=1024)
    ap.add_argument("--content", choices=("random", "mixed"), default="random")
    ap.add_argument("--level", type=int, default=streams.LEVEL)
    ap.add_argument("--rounds", type=int, default=3, help="best of N, alternating (the machine is shared)")
    args = ap.parse_args()
    image = ensure_busybox_image()
    engine = Engine(timeout=600)
    tag = secrets.token_hex(3)
    src, dst, dst_cp = f"spbench-{tag}-src", f"spbench-{tag}-dst", f"spbench-{tag}-dstcp"
    work = Path(tempfile.mkdtemp(prefix="spbench-backup-"))
    made: list[str] = []
    try:
        for v in (src, dst, dst_cp):
            docker("volume", "create", v)
        half = args.mb // 2
        mib = 1024 * 1024
        fill = (
            f"head -c {args.mb * mib} /dev/urandom > /data/big.bin"
            if args.content == "random"
            else f"head -c {half * mib} /dev/urandom > /data/random.bin; "
            f"yes 'INSERT INTO t VALUES (42, \"some text\");' | head -c {(args.mb - half) * mib} > /data/text.sql"
        )
        fill = "set -e; " + fill
        fill += "; mkdir -p /data/small && for i in $(seq 1 500); do echo $i > /data/small/f$i; done"
        docker("run", "--rm", "--network", "none", "-v", f"{src}:/data", image, "sh", "-c", fill)
        print(
            f"bench_backup: {args.mb} MB ({args.content}), gzip level {args.level}, best of {args.rounds}, "
            f"engine {engine.version()}, load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )

        # docker cp baseline: the same data as a tar on the same disk
        ctr = docker("create", "--network", "none", "-v", f"{src}:/data:ro", image, "true").stdout.decode().strip()
        made.append(ctr)
        tar_path = work / "cp.tar"
        gz_path = work / "sp.tar.gz"
        rss_before = rss_now()
        streams.LEVEL = args.level
        cp_backup = sp_backup = cp_restore = sp_restore = sp_check = float("inf")
        peak_backup = 0.0
        ctr2 = docker("create", "--network", "none", "-v", f"{dst_cp}:/data", image, "true").stdout.decode().strip()
        made.append(ctr2)
        for n in range(args.rounds):
            for p in (tar_path, gz_path):
                p.unlink(missing_ok=True)
            load = os.getloadavg()[0]
            start = time.perf_counter()
            with open(tar_path, "wb") as out:
                subprocess.run(["docker", "cp", f"{ctr}:/data", "-"], stdout=out, check=True)
                os.fsync(out.fileno())  # as ours does
            t_cp_out = time.perf_counter() - start

            start = time.perf_counter()
            written = write_gzip(archives.read_volume(engine, image, src), gz_path)
            t_sp_out = time.perf_counter() - start
            peak_backup = max(peak_backup, hwm_mb())

            start = time.perf_counter()
            with open(tar_path, "rb") as f:
                subprocess.run(["docker", "cp", "-", f"{ctr2}:/"], stdin=f, check=True)
            t_cp_in = time.perf_counter() - start

            start = time.perf_counter()
            assert streams.file_sha256(gz_path) == written.sha256  # what jobs.restore checks first
            t_check = time.perf_counter() - start
            start = time.perf_counter()
            archives.write_volume(engine, image, dst, read_gzip(gz_path))
            t_sp_in = time.perf_counter() - start
            mb = written.tar_bytes / 1e6
            print(
                f"  round {n + 1}: load {load:.1f}-{os.getloadavg()[0]:.1f}  out: docker cp {mb / t_cp_out:.0f}, "
                f"ours {mb / t_sp_out:.0f} MB/s ({t_cp_out / t_sp_out:.2f}x)  in: docker cp {mb / t_cp_in:.0f}, "
                f"ours {mb / t_sp_in:.0f} MB/s ({t_cp_in / t_sp_in:.2f}x), sha256 check {mb / t_check:.0f} MB/s"
            )
            cp_backup, sp_backup = min(cp_backup, t_cp_out), min(sp_backup, t_sp_out)
            cp_restore, sp_restore, sp_check = (
                min(cp_restore, t_cp_in),
                min(sp_restore, t_sp_in),
                min(sp_check, t_check),
            )
        peak_all = hwm_mb()
        same = streams.file_list(archives.read_volume(engine, image, dst)) == streams.file_list(read_gzip(gz_path))

        mbps = lambda s: f"{written.tar_bytes / 1e6 / s:.0f} MB/s"  # noqa: E731
        row("docker cp out (tar, no compression)", mbps(cp_backup))
        row("Stackpilot backup (tar.gz + sha256)", mbps(sp_backup), ">= 0.8x docker cp", sp_backup <= cp_backup / 0.8)
        row("  ratio backup / docker cp", f"{cp_backup / sp_backup:.2f}x")
        row("docker cp in (tar)", mbps(cp_restore))
        row(
            "Stackpilot restore (tar.gz into the volume)",
            mbps(sp_restore),
            ">= 0.8x docker cp",
            sp_restore <= cp_restore / 0.8,
        )
        row("  ratio restore / docker cp", f"{cp_restore / sp_restore:.2f}x")
        row("  with the archive's sha256 check first", mbps(sp_check + sp_restore), "(jobs.restore checks it first)")
        row("  ratio restore with check / docker cp", f"{cp_restore / (sp_check + sp_restore):.2f}x")
        row("archive size", f"{written.file_bytes / 1e6:.0f} MB", f"(tar {written.tar_bytes / 1e6:.0f} MB)")
        row("RSS before", f"{rss_before:.0f} MB")
        row("peak RSS during backup", f"{peak_backup:.0f} MB", "flat: < before + 64 MB", peak_backup < rss_before + 64)
        row("peak RSS after restore", f"{peak_all:.0f} MB", "flat: < before + 64 MB", peak_all < rss_before + 64)
        row("restored files == archive (sha256 list)", str(same), "", same)
    finally:
        for c in made:
            subprocess.run(["docker", "rm", "-f", c], capture_output=True)
        for v in (src, dst, dst_cp):
            subprocess.run(["docker", "volume", "rm", "-f", v], capture_output=True)
        for p in work.iterdir():
            p.unlink()
        os.rmdir(work)


if __name__ == "__main__":
    main()
