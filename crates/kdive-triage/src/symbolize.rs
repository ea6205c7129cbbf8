//! Frames resolved to source lines through the kernel's images.

use std::collections::HashMap;

use kdive_symbols::{KernelImages, SourceLocation};

use crate::details::{self, Frame, InlinedCall, Stack};

/// The address to look up for a frame. A return address points after its call; the call
/// itself is the byte before (as syzkaller and `gdb` do), in the previous function when a
/// noreturn call ends it (arm64's trace then names the next function at offset 0). The
/// faulting instruction (`RIP:`) is exact, and so is a stale, unreliable `? func+0x0`.
fn lookup_address(frame: &Frame, address: u64) -> u64 {
    if frame.is_rip || (frame.offset == 0 && !frame.reliable) {
        address
    } else {
        address.saturating_sub(1)
    }
}

fn path_of(location: &SourceLocation) -> Option<String> {
    location.tree_file.clone().or_else(|| location.file.clone())
}

fn warn_once(warnings: &mut Vec<String>, message: String) {
    if !warnings.contains(&message) {
        warnings.push(message);
    }
}

pub(crate) fn frames(symbols: &KernelImages, frames: &mut [Frame], warnings: &mut Vec<String>) {
    for frame in frames {
        let Some(image) = symbols.image(frame.module.as_deref()) else {
            match &frame.module {
                Some(module) => warn_once(
                    warnings,
                    format!("no debug object for module {module}: give its .ko with --modules"),
                ),
                None => warn_once(
                    warnings,
                    "no vmlinux given: kernel frames are not resolved".into(),
                ),
            }
            continue;
        };
        let Some(address) = image.resolve(&frame.function, frame.offset, frame.size) else {
            warn_once(
                warnings,
                format!("{}: no symbol {}", image.path().display(), frame.function),
            );
            continue;
        };
        // A module's addresses are those its object was laid out at here, not where it was
        // loaded: only a vmlinux address means something to the reader.
        if image.kind() == kdive_symbols::ImageKind::Executable {
            frame.address = Some(format!("{address:#x}"));
        }
        // A noreturn call ending a function returns to the next one's first byte, which the
        // trace names: the frame is the caller's, at the end of the function before.
        if frame.offset == 0 && frame.reliable && !frame.is_rip {
            if let Some((caller, offset)) = image.symbol_at(address.saturating_sub(1)) {
                if caller.name != frame.function && caller.is_function {
                    frame.function = caller.name.to_string();
                    frame.offset = offset.saturating_add(1);
                    frame.size = (caller.size > 0).then_some(caller.size);
                }
            }
        }
        let mut locations = match image.locations(lookup_address(frame, address)) {
            Ok(locations) => locations,
            Err(err) => {
                warn_once(warnings, err.to_string());
                continue;
            }
        };
        let Some(own) = locations.pop() else {
            continue;
        };
        frame.file = path_of(&own);
        frame.line = own.line;
        frame.inlined = locations
            .iter()
            .map(|loc| InlinedCall {
                function: loc.function.clone(),
                file: path_of(loc),
                line: loc.line,
            })
            .collect();
    }
}

/// The address of a resolved frame.
pub(crate) fn frame_address(frame: &Frame) -> Option<u64> {
    let text = frame.address.as_deref()?;
    u64::from_str_radix(text.trim_start_matches("0x"), 16).ok()
}

/// The source line of the faulting instruction: the innermost inlined call is where the
/// instruction really is.
pub(crate) fn fault_source(rip: &Frame) -> Option<(String, Option<String>)> {
    let (function, file, line) = match rip.inlined.first() {
        Some(call) => (call.function.clone(), call.file.clone(), call.line),
        None => (Some(rip.function.clone()), rip.file.clone(), rip.line),
    };
    let file = file?;
    let mut source = format!("{file}:{}", line.unwrap_or(0));
    if let Some(function) = function {
        source.push_str(&format!(" ({function})"));
    }
    let text = line.and_then(|line| source_line(&file, line));
    Some((source, text))
}

/// Source files larger than this are not read for one line.
const MAX_SOURCE_FILE: u64 = 16 << 20;

/// Line `line` (1-based) of `file`, if the file is on this machine (a module built here, or
/// a kernel tree at the path its debug info names).
fn source_line(file: &str, line: u32) -> Option<String> {
    let path = std::path::Path::new(file);
    if !path.is_absolute() || std::fs::metadata(path).ok()?.len() > MAX_SOURCE_FILE {
        return None;
    }
    let text = std::fs::read(path).ok()?;
    let index = usize::try_from(line).ok()?.checked_sub(1)?;
    let wanted = text.split(|&b| b == b'\n').nth(index)?;
    Some(String::from_utf8_lossy(wanted).trim_end().to_string())
}

type FrameKey = (String, u64, Option<String>);

fn key(frame: &Frame) -> FrameKey {
    (frame.function.clone(), frame.offset, frame.module.clone())
}

/// The report's lines with each resolved frame expanded as a symbolizer prints it: one line
/// per inlined call (innermost first) then the frame with its `file:line`. Unresolved lines
/// stay as logged (a log may already carry file:line).
pub(crate) fn guilty_lines(text: &[Vec<u8>], frames: &[Frame], others: &[Stack]) -> Vec<String> {
    let mut resolved: HashMap<FrameKey, &Frame> = HashMap::new();
    for frame in frames
        .iter()
        .chain(others.iter().flat_map(|s| s.frames.iter()))
    {
        if frame.file.is_some() {
            resolved.entry(key(frame)).or_insert(frame);
        }
    }
    let mut out = Vec::with_capacity(text.len());
    for line in text {
        let line = String::from_utf8_lossy(line).into_owned();
        let found = if resolved.is_empty() {
            None
        } else if line.contains("RIP:") {
            frames
                .first()
                .filter(|f| f.is_rip && f.file.is_some() && line.contains(f.function.as_str()))
        } else {
            details::parse_frame(&line, "").and_then(|parsed| resolved.get(&key(&parsed)).copied())
        };
        let Some(frame) = found else {
            out.push(line);
            continue;
        };
        for call in &frame.inlined {
            if let Some(file) = &call.file {
                out.push(format!(
                    " {} {file}:{} [inline]",
                    call.function.as_deref().unwrap_or("??"),
                    call.line.unwrap_or(0)
                ));
            }
        }
        out.push(format!(
            "{} {}:{}",
            line.trim_end(),
            frame.file.as_deref().unwrap_or("??"),
            frame.line.unwrap_or(0)
        ));
    }
    out
}
