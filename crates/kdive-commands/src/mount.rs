//! `mount`: the mounted file systems of pid 1's mount namespace, or with `-n` a task's
//! (crash's `cmd_mount()`, filesys.c `show_mounts()`). `-f` (open files through
//! `super_block.s_files`, gone in 3.13) and `-i` (dirty inodes through `s_dirty`, gone in
//! 2.6.32) end in crash's errors on kernels without those lists.

use std::io::{self, Write};

use kdive_kernel::files::{mounts, FsLayout};
use serde::Serialize;

use crate::format::center;
use crate::ps::{tasks_by_words, Hex};
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::CommandError;

const USAGE: &str = "mount [-f][-i] [-n pid|task]";

#[derive(Debug, Clone, Serialize)]
pub struct MountRecord {
    pub mounts: Vec<MountRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MountRow {
    /// The `struct mount`.
    pub mount: Hex,
    pub superblock: Hex,
    /// `null`: unreadable (crash prints `unknown`).
    #[serde(rename = "type")]
    pub fs_type: Option<String>,
    /// `null`: unreadable (crash prints `(unknown)`).
    pub devname: Option<String>,
    pub dirname: String,
}

impl MountRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "{} {} TYPE   DEVNAME   DIRNAME",
            center("MOUNT", 16, false),
            center("SUPERBLK", 16, false)
        )?;
        for m in &self.mounts {
            // crash pads type and device name to 6 and 9 columns, then takes back the
            // spaces past the 17th column.
            let mut middle = match &m.fs_type {
                Some(t) => format!("{t:<6} "),
                None => "unknown ".to_owned(),
            };
            middle.push_str(&format!(
                "{:<9} ",
                m.devname.as_deref().unwrap_or("(unknown)")
            ));
            while middle.len() > 17 && middle.as_bytes().get(middle.len() - 2) == Some(&b' ') {
                middle.pop();
            }
            writeln!(
                out,
                "{:>16x} {:>16x} {middle}{:<10}",
                m.mount.0, m.superblock.0, m.dirname
            )?;
        }
        Ok(())
    }
}

/// `mount`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "mount",
    aliases: &[],
    summary: "mounted file systems: mount, super block, type, device, directory",
    usage: USAGE,
    description: "The mounts of pid 1's mount namespace, in its order: the struct mount, its\n\
super block, the file system type, the device name and where it is mounted.\n\
  -n PID|TASK  the mounts of that task's mount namespace\n\
  -f           each file system's open files (super_block.s_files: kernels before 3.13)\n\
  -i           each file system's dirty inodes (super_block.s_dirty: before 2.6.32)",
    examples: &[
        "mount                what was mounted where when the system crashed",
        "mount -n 153         the mounts pid 153 sees",
    ],
    options: &["-n", "-f", "-i"],
    operands: Operand::None,
    schema: 1,
    run: run_mount,
};

fn run_mount(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let failed = |what: String| CommandError::Failed {
        command: "mount",
        what,
    };
    let kernel = session.kernel();
    // crash starts from the lowest pid from 1 up that has a task.
    let mut namespace = session
        .tasks()
        .tasks
        .iter()
        .filter(|t| t.pid >= 1)
        .min_by_key(|t| t.pid)
        .map(|t| t.addr)
        .ok_or_else(|| failed("no task with a pid: no mount namespace to list".into()))?;
    let mut i = 0;
    while let Some(w) = words.get(i) {
        i += 1;
        let Some(options) = w.strip_prefix('-').filter(|o| !o.is_empty()) else {
            return Err(SPEC.bad_args(format!("unexpected argument: {w}")));
        };
        // Each option either ends the command (-f, -i, unknown) or takes the rest (-n).
        let mut chars = options.chars();
        let c = chars.next().unwrap_or('-');
        match c {
            'f' | 'i' => {
                let (member, list, since) = if c == 'f' {
                    ("s_files", "super_block.s_files", "3.13")
                } else {
                    ("s_dirty", "super_block.s_dirty", "2.6.32")
                };
                let exists = kernel.has_member("super_block", member).unwrap_or(false)
                    || (c == 'f' && kernel.has_symbol("inuse_filps"));
                if !exists {
                    return Err(failed(format!(
                        "the {list} linked list does not exist in this kernel\n\
                             mount: -{c} option not supported or applicable on this \
                             architecture or kernel"
                    )));
                }
                return Err(failed(format!(
                    "-{c}: kdive does not read the {list} lists of kernels before {since}"
                )));
            }
            'n' => {
                let rest = chars.as_str();
                let arg = if rest.is_empty() {
                    let next = words
                        .get(i)
                        .ok_or_else(|| SPEC.bad_args("-n needs a pid or task"))?;
                    i += 1;
                    next.clone()
                } else {
                    rest.to_owned()
                };
                let mut notes = Vec::new();
                let found = tasks_by_words(
                    session.tasks(),
                    "mount",
                    std::slice::from_ref(&arg),
                    &mut notes,
                );
                namespace = found
                    .first()
                    .map(|t| t.addr)
                    .ok_or_else(|| failed(format!("invalid task or pid value: {arg}")))?;
            }
            other => {
                return Err(CommandError::BadOption {
                    command: "mount",
                    option: other,
                    usage: USAGE,
                })
            }
        }
    }
    let layout = FsLayout::read(kernel).map_err(|e| failed(e.to_string()))?;
    let list = mounts(kernel, &layout, namespace, warnings).map_err(|e| failed(e.to_string()))?;
    Ok(Box::new(MountRecord {
        mounts: list
            .into_iter()
            .map(|m| MountRow {
                mount: Hex(m.mount),
                superblock: Hex(m.superblock),
                fs_type: m.fs_type,
                devname: m.devname,
                dirname: m.dirname,
            })
            .collect(),
    }))
}

crate::impl_record!(MountRecord);

#[cfg(test)]
mod tests {
    use super::*;

    /// crash 9.0.2's lines for the lab's userland guest (6.12-userland.kdump-zstd-d0).
    #[test]
    fn crash_layout() {
        let row = |t: &str, dev: &str, dir: &str| MountRow {
            mount: Hex(0xffff_8ac3_811f_2900),
            superblock: Hex(0xffff_8ac3_8105_a800),
            fs_type: Some(t.into()),
            devname: Some(dev.into()),
            dirname: dir.into(),
        };
        let record = MountRecord {
            mounts: vec![
                row("rootfs", "rootfs", "/"),
                row("devtmpfs", "devtmpfs", "/dev"),
                row("cgroup2", "none", "/sys/fs/cgroup"),
            ],
        };
        let mut out = Vec::new();
        record.write_text(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "     MOUNT           SUPERBLK     TYPE   DEVNAME   DIRNAME\n\
             ffff8ac3811f2900 ffff8ac38105a800 rootfs rootfs    /         \n\
             ffff8ac3811f2900 ffff8ac38105a800 devtmpfs devtmpfs /dev      \n\
             ffff8ac3811f2900 ffff8ac38105a800 cgroup2 none     /sys/fs/cgroup\n"
        );
    }
}
