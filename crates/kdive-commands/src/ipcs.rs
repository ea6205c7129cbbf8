//! `ipcs`: System V shared memory, semaphore arrays and message queues (crash's
//! `cmd_ipcs()`, ipcs.c), of the initial IPC namespace.

use std::io::{self, Write};

use kdive_kernel::ipc::{ipc_objects, IpcKind, IpcObject};
use serde::Serialize;

use crate::ps::Hex;
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::CommandError;

/// `SHM_DEST` and `SHM_LOCKED` in `kern_ipc_perm.mode` (include/uapi/linux/shm.h).
const SHM_DEST: u64 = 0o1000;
const SHM_LOCKED: u64 = 0o2000;

#[derive(Debug, Clone, Serialize)]
pub struct IpcsRecord {
    /// Each table asked for; `objects` is `null` when none is allocated.
    pub shared_memory: Option<IpcTable>,
    pub semaphores: Option<IpcTable>,
    pub message_queues: Option<IpcTable>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IpcTable {
    pub objects: Option<Vec<IpcRow>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IpcRow {
    /// The `shmid_kernel`, `sem_array` or `msg_queue`.
    pub addr: Hex,
    pub key: u32,
    pub id: i64,
    pub uid: u32,
    /// Permission bits (octal in the text).
    pub perms: u64,
    /// Bytes (shared memory segment, message queue) or semaphores.
    pub size: u64,
    /// Attaches (shared memory) or messages (queues); absent for semaphores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Shared memory: `dest` (removed, still attached), `locked`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub status: Vec<&'static str>,
}

/// crash's column headers: the address column, then the rest each padded to its width.
fn header(first: &str, columns: &[(&str, usize)]) -> String {
    let mut line = format!("{first:<16}");
    for (name, width) in columns {
        line.push_str(&format!(" {name:<width$}"));
    }
    line
}

impl IpcsRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let tables: [(&Option<IpcTable>, String); 3] = [
            (
                &self.shared_memory,
                header(
                    "SHMID_KERNEL",
                    &[
                        ("KEY", 8),
                        ("SHMID", 10),
                        ("UID", 5),
                        ("PERMS", 5),
                        ("BYTES", 10),
                        ("NATTCH", 6),
                        ("STATUS", 6),
                    ],
                ),
            ),
            (
                &self.semaphores,
                header(
                    "SEM_ARRAY",
                    &[
                        ("KEY", 8),
                        ("SEMID", 10),
                        ("UID", 5),
                        ("PERMS", 5),
                        ("NSEMS", 10),
                    ],
                ),
            ),
            (
                &self.message_queues,
                header(
                    "MSG_QUEUE",
                    &[
                        ("KEY", 8),
                        ("MSQID", 10),
                        ("UID", 5),
                        ("PERMS", 5),
                        ("USED-BYTES", 12),
                        ("MESSAGES", 12),
                    ],
                ),
            ),
        ];
        for (kind, (table, head)) in tables.iter().enumerate() {
            let Some(table) = table else { continue };
            writeln!(out, "{head}")?;
            let Some(objects) = &table.objects else {
                writeln!(out, "(none allocated)\n")?;
                continue;
            };
            for o in objects {
                let start = format!(
                    "{:<16x} {:08x} {:<10} {:<5} {:<5o}",
                    o.addr.0,
                    o.key,
                    o.id,
                    o.uid,
                    o.perms & 0o777
                );
                match kind {
                    0 => writeln!(
                        out,
                        "{start} {:<10} {:<6} {} {}",
                        o.size,
                        o.count.unwrap_or(0),
                        if o.status.contains(&"dest") {
                            "dest"
                        } else {
                            ""
                        },
                        if o.status.contains(&"locked") {
                            "locked"
                        } else {
                            ""
                        }
                    )?,
                    1 => writeln!(out, "{start} {:<10}", o.size)?,
                    _ => writeln!(out, "{start} {:<12} {:<12}", o.size, o.count.unwrap_or(0))?,
                }
            }
            writeln!(out)?;
        }
        Ok(())
    }
}

/// `ipcs`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "ipcs",
    aliases: &[],
    summary: "System V IPC: shared memory, semaphore arrays, message queues",
    usage: "ipcs [-s] [-m] [-q]",
    description: "The System V IPC objects of the initial IPC namespace, as crash lists them:\n\
address, key, id, owner, permissions and size (bytes, semaphores), with attaches and\n\
messages. Without options all three kinds; objects being removed are left out.\n\
  -m  shared memory segments   -s  semaphore arrays   -q  message queues",
    examples: &[
        "ipcs                 every shared memory segment, semaphore array and queue",
        "ipcs -q              the message queues: bytes and messages waiting",
    ],
    options: &["-s", "-m", "-q"],
    operands: Operand::None,
    schema: 1,
    run: run_ipcs,
};

fn run_ipcs(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let (mut shm, mut sem, mut msg) = (false, false, false);
    for word in words {
        let Some(options) = word.strip_prefix('-').filter(|o| !o.is_empty()) else {
            return Err(SPEC.bad_args(format!("unexpected argument: {word}")));
        };
        for option in options.chars() {
            match option {
                'm' => shm = true,
                's' => sem = true,
                'q' => msg = true,
                other => {
                    return Err(CommandError::BadOption {
                        command: "ipcs",
                        option: other,
                        usage: SPEC.usage,
                    })
                }
            }
        }
    }
    if !(shm || sem || msg) {
        (shm, sem, msg) = (true, true, true);
    }
    let kernel = session.kernel();
    let mut table = |kind: IpcKind, wanted: bool| -> Result<Option<IpcTable>, CommandError> {
        if !wanted {
            return Ok(None);
        }
        let objects = ipc_objects(kernel, kind, warnings).map_err(|e| CommandError::Failed {
            command: "ipcs",
            what: format!("{kind:?}: {e}"),
        })?;
        Ok(Some(IpcTable {
            objects: objects.map(|list| list.into_iter().map(|o| row(kind, o)).collect()),
        }))
    };
    Ok(Box::new(IpcsRecord {
        shared_memory: table(IpcKind::SharedMemory, shm)?,
        semaphores: table(IpcKind::Semaphores, sem)?,
        message_queues: table(IpcKind::MessageQueues, msg)?,
    }))
}

fn row(kind: IpcKind, o: IpcObject) -> IpcRow {
    let mut status = Vec::new();
    if kind == IpcKind::SharedMemory {
        if o.mode & SHM_DEST != 0 {
            status.push("dest");
        }
        if o.mode & SHM_LOCKED != 0 {
            status.push("locked");
        }
    }
    IpcRow {
        addr: Hex(o.addr),
        key: o.key,
        id: o.id,
        uid: o.uid,
        perms: o.mode & 0o777,
        size: o.size,
        count: (kind != IpcKind::Semaphores).then_some(o.count),
        status,
    }
}

crate::impl_record!(IpcsRecord);

#[cfg(test)]
mod tests {
    use super::*;

    /// crash 9.0.2's text for the lab's userland guest (6.12-userland.kdump-zstd-d0).
    #[test]
    fn crash_layout() {
        let object = |addr, key, size, count| IpcRow {
            addr: Hex(addr),
            key,
            id: 0,
            uid: 0,
            perms: 0o600,
            size,
            count,
            status: Vec::new(),
        };
        let record = IpcsRecord {
            shared_memory: Some(IpcTable {
                objects: Some(vec![object(
                    0xffff_8ac3_8f6c_7d00,
                    0x4b44_4956,
                    1_048_576,
                    Some(1),
                )]),
            }),
            semaphores: Some(IpcTable {
                objects: Some(vec![object(0xffff_8ac3_8f48_9200, 0x4b44_4957, 3, None)]),
            }),
            message_queues: Some(IpcTable { objects: None }),
        };
        let mut out = Vec::new();
        record.write_text(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "SHMID_KERNEL     KEY      SHMID      UID   PERMS BYTES      NATTCH STATUS\n\
             ffff8ac38f6c7d00 4b444956 0          0     600   1048576    1       \n\
             \n\
             SEM_ARRAY        KEY      SEMID      UID   PERMS NSEMS     \n\
             ffff8ac38f489200 4b444957 0          0     600   3         \n\
             \n\
             MSG_QUEUE        KEY      MSQID      UID   PERMS USED-BYTES   MESSAGES    \n\
             (none allocated)\n\
             \n"
        );
    }
}
