#!/usr/bin/env python3
"""drgn oracle of the kdive lab: facts of one vmcore as JSON.

Run with the lab's drgn venv python:
  drgn_oracle.py --output drgn.json --vmlinux VMLINUX --kernel-directory DIR [--module KO] DUMP

Every section is computed on its own; a failing section is recorded in "errors" and the
others are still written. Exit status 1 only when the dump cannot be opened at all.
"""

import argparse
import json
import sys
import traceback

import drgn
from drgn.helpers.linux import (
    for_each_module,
    for_each_online_cpu,
    for_each_task,
    get_dmesg,
    global_zone_page_state,
    totalram_pages,
)
from drgn.helpers.linux.panic import panic_message
from drgn.helpers.linux.sched import idle_task, task_cpu, task_state_to_char


def hexaddr(value):
    return f"0x{int(value):x}"


def open_program(args):
    with open(args.dump[0], "rb") as f:
        magic = f.read(16)
    # kdump-compressed (and flattened) files carry no ELF header: tell drgn the architecture.
    platform = None
    if not magic.startswith(b"\x7fELF"):
        platform = drgn.Platform(drgn.Architecture.X86_64)
    prog = drgn.Program(platform=platform)
    prog.set_core_dump(args.dump[0])
    opts = prog.debug_info_options
    opts.directories = (f"{args.kernel_directory}/usr/lib/debug",)
    opts.kernel_directories = ("", args.kernel_directory)
    paths = [args.vmlinux] + ([args.module] if args.module else [])
    try:
        prog.load_debug_info(paths, default=True)
    except drgn.MissingDebugInfoError as e:
        # Modules without debug info (there may be none) are not an error for the oracle.
        return prog, str(e)
    return prog, None


def frame_record(frame):
    rec = {"function": frame.name, "inline": frame.is_inline, "interrupted": frame.interrupted}
    try:
        rec["pc"] = hexaddr(frame.pc)
    except LookupError:
        rec["pc"] = None
    try:
        sym = frame.symbol()
        rec["symbol"] = sym.name
        rec["offset"] = hexaddr(frame.pc - sym.address)
    except LookupError:
        rec["symbol"] = None
    try:
        filename, line, _ = frame.source()
        rec["source"] = f"{filename}:{line}"
    except LookupError:
        rec["source"] = None
    return rec


def task_record(prog, task):
    rec = {
        "pid": int(task.pid),
        "tgid": int(task.tgid),
        "ppid": int(task.real_parent.pid),
        "comm": task.comm.string_().decode(errors="replace"),
        "task": hexaddr(task.value_()),
        "state": task_state_to_char(task),
        "cpu": int(task_cpu(task)),
        "on_cpu": bool(task.on_cpu) if hasattr(task, "on_cpu") else None,
        "kthread": bool(task.flags & 0x00200000),  # PF_KTHREAD
    }
    try:
        rec["stack"] = [frame_record(f) for f in prog.stack_trace(task)]
    except Exception as e:  # drgn raises ValueError/LookupError/FaultError for odd tasks
        rec["stack"] = None
        rec["stack_error"] = f"{type(e).__name__}: {e}"
    return rec


def section(result, name, fn):
    try:
        result[name] = fn()
    except Exception as e:
        result[name] = None
        result["errors"][name] = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"


def uts(prog):
    u = prog["init_uts_ns"].name
    return {k: getattr(u, k).string_().decode(errors="replace")
            for k in ("sysname", "nodename", "release", "version", "machine")}


def tasks(prog):
    # The idle tasks (pid 0, one per CPU) are not in this list; see idle_tasks().
    return sorted((task_record(prog, t) for t in for_each_task(prog)), key=lambda t: t["pid"])


def idle_tasks(prog):
    out = []
    for cpu in for_each_online_cpu(prog):
        rec = task_record(prog, idle_task(prog, cpu))
        rec["cpu"] = cpu
        out.append(rec)
    return out


def modules(prog):
    out = []
    for mod in for_each_module(prog):
        rec = {"name": mod.name.string_().decode()}
        if hasattr(mod, "mem"):  # 6.4+: struct module_memory mem[MOD_MEM_NUM_TYPES]
            text = mod.mem[0]
            rec["base"] = hexaddr(text.base.value_())
            rec["size"] = int(sum(int(mod.mem[i].size) for i in range(len(mod.mem))))
            rec["text_size"] = int(text.size)
        else:
            rec["base"] = hexaddr(mod.core_layout.base.value_())
            rec["size"] = int(mod.core_layout.size)
            rec["text_size"] = int(mod.core_layout.text_size)
        out.append(rec)
    return out


def memory(prog):
    mem = {"page_size": int(prog["PAGE_SIZE"]), "totalram_pages": int(totalram_pages(prog))}
    for item in ("NR_FREE_PAGES", "NR_ZONE_ACTIVE_ANON", "NR_ZONE_INACTIVE_ANON",
                 "NR_ZONE_ACTIVE_FILE", "NR_ZONE_INACTIVE_FILE", "NR_MLOCK",
                 "NR_BOUNCE", "NR_FREE_CMA_PAGES"):
        try:
            mem[item.lower()] = int(global_zone_page_state(prog[item]))
        except (KeyError, LookupError):
            pass
    for name in ("totalreserve_pages", "totalcma_pages", "max_pfn", "min_low_pfn"):
        try:
            mem[name] = int(prog[name])
        except (KeyError, LookupError):
            pass
    try:
        mem["totalhigh_pages"] = int(prog["_totalhigh_pages"].counter)
    except (KeyError, LookupError, AttributeError):
        pass
    return mem


def panic_info(prog):
    info = {}
    try:
        thread = prog.crashed_thread()
        task = thread.object
        info["task"] = {"pid": int(task.pid), "comm": task.comm.string_().decode(),
                        "task": hexaddr(task.value_()), "cpu": int(task_cpu(task))}
        info["stack"] = [frame_record(f) for f in thread.stack_trace()]
    except Exception as e:
        info["task"] = None
        info["task_error"] = f"{type(e).__name__}: {e}"
    try:
        msg = panic_message(prog)
        info["message"] = msg.decode(errors="replace") if isinstance(msg, bytes) else msg
    except Exception as e:
        info["message"] = None
        info["message_error"] = f"{type(e).__name__}: {e}"
    return info


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--output", required=True)
    ap.add_argument("--vmlinux", required=True)
    ap.add_argument("--kernel-directory", required=True)
    ap.add_argument("--module")
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
    section(result, "uts", lambda: uts(prog))
    section(result, "panic", lambda: panic_info(prog))
    section(result, "tasks", lambda: tasks(prog))
    section(result, "idle_tasks", lambda: idle_tasks(prog))
    section(result, "modules", lambda: modules(prog))
    section(result, "memory", lambda: memory(prog))
    section(result, "log", lambda: get_dmesg(prog).decode(errors="replace"))
    with open(args.output, "w") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
