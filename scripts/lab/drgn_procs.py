#!/usr/bin/env python3
"""drgn oracle of the kdive lab's userland scenarios: processes' files and memory as JSON.

Run with the lab's drgn venv python:
  drgn_procs.py --output drgn.procs.json --vmlinux VMLINUX --kernel-directory DIR [--module KO]
                [--pid PID]... DUMP

Writes
  counts{tasks, processes, threads_max_per_process}  (for_each_task; idle tasks not counted)
  mounts[{src, dst, fstype}]                          (for_each_mount of init's namespace)
  processes[{pid, tgid, comm, state, threads, files[{fd, path, mode, pos, flags}],
             vmas[{start, end, flags, pgoff, file}], rss{file, anon, swap, shmem}}]
for each --pid. Every section (and every process) is computed on its own; failures are
recorded in "errors". Exit status 1 only when the dump cannot be opened at all.
"""

import argparse
import collections
import json
import sys
import traceback

import drgn
from drgn.helpers.linux.fs import d_path, for_each_file, for_each_mount, mount_dst, \
    mount_fstype, mount_src
from drgn.helpers.linux.mm import for_each_vma
from drgn.helpers.linux.pid import find_task, for_each_task
from drgn.helpers.linux.sched import task_state_to_char

from drgn_oracle import hexaddr, open_program


def text(b):
    return b.decode(errors="replace") if isinstance(b, bytes) else str(b)


def file_path(f):
    try:
        return text(d_path(f.f_path.address_of_()))
    except Exception as e:  # anonymous inodes, sockets, pipes: d_path may still name them
        return f"<{type(e).__name__}: {e}>"


def counts(prog):
    tasks = 0
    per_tgid = collections.Counter()
    for t in for_each_task(prog):
        tasks += 1
        per_tgid[int(t.tgid)] += 1
    return {"tasks": tasks, "processes": len(per_tgid),
            "threads_max_per_process": max(per_tgid.values(), default=0)}


def mounts(prog):
    return [{"src": text(mount_src(mnt)), "dst": text(mount_dst(mnt)),
             "fstype": text(mount_fstype(mnt))} for mnt in for_each_mount(prog)]


def rss(mm):
    # MM_FILEPAGES, MM_ANONPAGES, MM_SWAPENTS, MM_SHMEMPAGES; percpu counters from 6.2.
    out = {}
    for i, name in enumerate(("file", "anon", "swap", "shmem")):
        counter = mm.rss_stat[i] if not hasattr(mm.rss_stat, "count") else mm.rss_stat.count[i]
        if hasattr(counter, "count"):  # struct percpu_counter
            out[name] = int(counter.count)
        else:  # atomic_long_t
            out[name] = int(counter.counter)
    return out


def process(prog, pid):
    task = find_task(prog, pid)
    if not task:
        return {"pid": pid, "error": "no such task"}
    rec = {"pid": pid, "tgid": int(task.tgid), "comm": text(task.comm.string_()),
           "state": task_state_to_char(task), "task": hexaddr(task.value_()),
           "threads": int(task.signal.nr_threads), "errors": {}}
    try:
        rec["files"] = [{"fd": int(fd), "path": file_path(f), "mode": int(f.f_mode),
                         "pos": int(f.f_pos), "flags": int(f.f_flags)}
                        for fd, f in for_each_file(task)]
    except Exception as e:
        rec["errors"]["files"] = f"{type(e).__name__}: {e}"
    mm = task.mm
    if not mm:
        rec["vmas"] = []
        return rec
    try:
        vmas = []
        for vma in for_each_vma(mm):
            vmas.append({"start": hexaddr(vma.vm_start), "end": hexaddr(vma.vm_end),
                         "flags": hexaddr(vma.vm_flags), "pgoff": int(vma.vm_pgoff),
                         "file": file_path(vma.vm_file) if vma.vm_file else None})
        rec["vmas"] = vmas
    except Exception as e:
        rec["errors"]["vmas"] = f"{type(e).__name__}: {e}"
    try:
        rec["rss"] = rss(mm)
    except Exception as e:
        rec["errors"]["rss"] = f"{type(e).__name__}: {e}"
    return rec


def section(result, name, fn):
    try:
        result[name] = fn()
    except Exception as e:
        result[name] = None
        result["errors"][name] = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--output", required=True)
    ap.add_argument("--vmlinux", required=True)
    ap.add_argument("--kernel-directory", required=True)
    ap.add_argument("--module")
    ap.add_argument("--pid", type=int, action="append", default=[])
    ap.add_argument("dump", nargs="+")
    args = ap.parse_args()
    result = {"drgn_version": drgn.__version__, "dump": args.dump, "errors": {}}
    try:
        if len(args.dump) > 1:
            raise ValueError("drgn opens one file; split dumps are not supported")
        prog, missing = open_program(args)
    except Exception as e:
        result["errors"]["open"] = f"{type(e).__name__}: {e}"
        with open(args.output, "w") as f:
            json.dump(result, f, indent=1)
        print(result["errors"]["open"], file=sys.stderr)
        return 1
    if missing:
        result["errors"]["debug_info"] = missing
    section(result, "counts", lambda: counts(prog))
    section(result, "mounts", lambda: mounts(prog))
    procs = []
    for pid in args.pid:
        try:
            procs.append(process(prog, pid))
        except Exception as e:
            procs.append({"pid": pid, "error": f"{type(e).__name__}: {e}"})
    result["processes"] = procs
    with open(args.output, "w") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
