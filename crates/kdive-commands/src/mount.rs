//! `mount`: the mounted file systems of pid 1's mount namespace (crash's `cmd_mount()`,
//! filesys.c `show_mounts()`).

use std::io::{self, Write};

use kdive_kernel::files::{mounts, FsLayout};
use serde::Serialize;

use crate::format::center;
use crate::ps::Hex;
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::CommandError;

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
    usage: "mount",
    description: "The mounts of pid 1's mount namespace, in its order: the struct mount, its\n\
super block, the file system type, the device name and where it is mounted.",
    examples: &["mount                what was mounted where when the system crashed"],
    options: &[],
    operands: Operand::None,
    schema: 1,
    run: run_mount,
};

fn run_mount(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    if let Some(extra) = words.first() {
        return Err(SPEC.bad_args(format!("unexpected argument: {extra}")));
    }
    let failed = |what: String| CommandError::Failed {
        command: "mount",
        what,
    };
    let init = session
        .tasks()
        .tasks
        .iter()
        .find(|t| t.pid == 1)
        .map(|t| t.addr)
        .ok_or_else(|| {
            failed("pid 1 is not in the task list: no mount namespace to list".into())
        })?;
    let kernel = session.kernel();
    let layout = FsLayout::read(kernel).map_err(|e| failed(e.to_string()))?;
    let list = mounts(kernel, &layout, init, warnings).map_err(|e| failed(e.to_string()))?;
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
