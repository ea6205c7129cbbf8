//! kallsyms: the symbol table the kernel keeps in its own memory, so that a dump can be read
//! without its vmlinux.
//!
//! scripts/kallsyms.c lays it out as arrays in the kernel image, which VMCOREINFO locates
//! (since 6.0): `kallsyms_num_syms`; `kallsyms_names`, each name a length (in tokens; from 6.1
//! two bytes, ULEB128-style, when the top bit is set) and that many token numbers; the 256
//! tokens, NUL-terminated strings in `kallsyms_token_table` at the offsets
//! `kallsyms_token_index` gives; a name's first decoded byte is its `nm` letter. Addresses are
//! 32-bit `kallsyms_offsets`, read one of three ways: from `kallsyms_relative_base`
//! (base-relative), absolute when non-negative and below the base otherwise (x86_64's
//! absolute-percpu, to 6.14), or from the entry's own address (place-relative, 7.0 on).
//! Nothing records which, so each is tried on `_stext`, whose address VMCOREINFO gives.
//!
//! Everything here comes from a dump that may be damaged or hostile: counts are bounded,
//! every read is checked, and a table that does not decode is an error naming where.

/// Symbols a kernel may have: a vmlinux has ~200,000; allyesconfig under a million.
const MAX_SYMBOLS: u32 = 1 << 22;
/// A kernel's symbol names are at most `KSYM_NAME_LEN` (512) bytes.
const MAX_NAME: usize = 512;
/// The longest token string scanned for its NUL (scripts/kallsyms.c's tokens are short).
const MAX_TOKEN: u64 = 256;
/// `kallsyms_names` is read in pieces of this size as the names are walked.
const NAMES_CHUNK: usize = 64 << 10;
/// `kallsyms_names` of a real kernel is a few MiB; a walk past this is not one.
const MAX_NAMES_BYTES: u64 = 64 << 20;

/// Where VMCOREINFO says the tables are (runtime addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KallsymsLocation {
    pub num_syms: u64,
    pub names: u64,
    pub token_table: u64,
    pub token_index: u64,
    pub offsets: u64,
    /// Absent from 7.0 on (place-relative offsets).
    pub relative_base: Option<u64>,
    /// `_stext` where the kernel runs: the check that picks the offsets' meaning.
    pub stext: u64,
}

impl KallsymsLocation {
    /// The location from VMCOREINFO's `SYMBOL(name)` entries; `None` when one it needs is
    /// missing (before 6.0, or a kernel built without kallsyms).
    pub fn from_symbols(symbol: impl Fn(&str) -> Option<u64>) -> Option<KallsymsLocation> {
        Some(KallsymsLocation {
            num_syms: symbol("kallsyms_num_syms")?,
            names: symbol("kallsyms_names")?,
            token_table: symbol("kallsyms_token_table")?,
            token_index: symbol("kallsyms_token_index")?,
            offsets: symbol("kallsyms_offsets")?,
            relative_base: symbol("kallsyms_relative_base"),
            stext: symbol("_stext")?,
        })
    }

    /// Whether VMCOREINFO's symbols locate the tables, or give `_stext` to
    /// [`scan`](KallsymsLocation::scan) from.
    pub fn can_be_found(symbol: impl Fn(&str) -> Option<u64>) -> bool {
        symbol("_stext").is_some() || KallsymsLocation::from_symbols(symbol).is_some()
    }
}

/// How far past `_stext` a scan looks for the tables (text, then `.rodata` where they are).
pub const SCAN_SPAN: u64 = 96 << 20;
/// How far before the token table the names and markers may start.
const SCAN_BACK: u64 = 16 << 20;
/// Every kernel names symbols with digits, each of which stays a one-character token: tokens
/// `'0'`..`'9'` sit in the table as these 20 bytes.
const DIGIT_TOKENS: &[u8] = b"0\x001\x002\x003\x004\x005\x006\x007\x008\x009\x00";
/// Proven token tables with no names before them that a scan tries before giving up.
const MAX_TOKEN_TABLES: usize = 8;
/// Labels of the generated tables are 8-byte aligned (`scripts/kallsyms.c`'s `ALGN`).
const LABEL_ALIGN: u64 = 8;

impl KallsymsLocation {
    /// Finds the tables by their contents in `[stext, stext + span)`, for kernels whose
    /// VMCOREINFO does not name them (before 6.0), laid out as `scripts/kallsyms.c` emits them
    /// there: `kallsyms_offsets`, `kallsyms_relative_base`, `kallsyms_num_syms`,
    /// `kallsyms_names`, `kallsyms_markers`, `kallsyms_token_table`, `kallsyms_token_index`,
    /// each at an 8-byte aligned label. The token table is found by its digit tokens and
    /// proven by the index that follows it (256 offsets that must match its strings); the
    /// names by a symbol count whose markers end where the token table starts. Reads go
    /// through `read` a page at a time; unreadable pages are skipped.
    pub fn scan(
        stext: u64,
        span: u64,
        read: &dyn Fn(u64, &mut [u8]) -> bool,
    ) -> Result<KallsymsLocation, KallsymsError> {
        const CHUNK: u64 = 1 << 20;
        let end = stext.saturating_add(span.min(SCAN_SPAN));
        let overlap = DIGIT_TOKENS.len() as u64;
        let mut chunk = vec![0u8; (CHUNK + overlap).min(end.saturating_sub(stext)) as usize];
        let mut at = stext;
        let mut proven = 0;
        while at < end {
            let len = (CHUNK + overlap).min(end - at) as usize;
            let buf = &mut chunk[..len];
            // A hole (a filtered or missing page) reads as zeros.
            read_lenient(at, buf, read);
            let mut from = 0;
            while let Some(pos) = find(&buf[from..], DIGIT_TOKENS) {
                let hit = at + (from + pos) as u64;
                if let Some(token_table) = token_table_at(hit, read) {
                    if let Some(found) = names_before(token_table.0, read) {
                        return Ok(found.location(token_table, stext));
                    }
                    // Each proven token table costs a search of the 16 MiB before it: a
                    // hostile image full of them must not make the scan endless.
                    proven += 1;
                    if proven >= MAX_TOKEN_TABLES {
                        return Err(KallsymsError::Bad {
                            what: format!(
                                "{proven} token tables without names before them near \
                                 {hit:#x}: not a kernel image this scan understands"
                            ),
                        });
                    }
                }
                from += pos + 1;
            }
            at += CHUNK;
        }
        Err(KallsymsError::Bad {
            what: format!(
                "no kallsyms tables found in {stext:#x}..{end:#x} (VMCOREINFO does not locate \
                 them before Linux 6.0, and the kernel image holds none this scan recognizes)"
            ),
        })
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `(kallsyms_token_table, kallsyms_token_index)`, if the digit tokens at `hit` are those of
/// a token table laid out as [`KallsymsLocation::scan`] expects.
fn token_table_at(hit: u64, read: &dyn Fn(u64, &mut [u8]) -> bool) -> Option<(u64, u64)> {
    // Token `'0'` is the 48th; tokens 1 to 47 before it are one NUL-terminated string each.
    const WINDOW: u64 = 4096;
    let base = hit.checked_sub(WINDOW)?;
    let mut before = vec![0u8; WINDOW as usize];
    read_lenient(base, &mut before, read);
    let mut start = WINDOW as usize;
    for _ in 0..47 {
        // `start` is a token's first byte; the byte before it ends the previous token.
        let prev_end = start.checked_sub(1)?;
        if before[prev_end] != 0 {
            return None;
        }
        let prev_start = before[..prev_end]
            .iter()
            .rposition(|&b| b == 0)
            .map_or(0, |nul| nul + 1);
        if prev_start == prev_end {
            return None; // empty token
        }
        start = prev_start;
    }
    // Token 0 ends before token 1; where it starts the bytes before the table (the markers'
    // last, say) need not say: each aligned start within a token's length is tried, and the
    // index decides.
    let token0_end = start.checked_sub(1)?;
    if before[token0_end] != 0 {
        return None;
    }
    let earliest = token0_end.saturating_sub(MAX_TOKEN as usize);
    (earliest..token0_end)
        .rev()
        .map(|at| base + at as u64)
        .filter(|at| at % LABEL_ALIGN == 0)
        .find_map(|token_table| proven_by_index(token_table, read))
}

/// `(token_table, token_index)` when the 256 strings at `token_table` are followed (at the
/// next label) by the index of their offsets.
fn proven_by_index(token_table: u64, read: &dyn Fn(u64, &mut [u8]) -> bool) -> Option<(u64, u64)> {
    let mut table = vec![0u8; 8192];
    read_lenient(token_table, &mut table, read);
    let mut offsets = [0u16; 256];
    let mut pos = 0usize;
    for slot in offsets.iter_mut() {
        *slot = u16::try_from(pos).ok()?;
        let len = table.get(pos..)?.iter().position(|&b| b == 0)?;
        if len == 0 {
            return None;
        }
        pos += len + 1;
    }
    let token_index = (token_table + pos as u64).next_multiple_of(LABEL_ALIGN);
    let mut raw = [0u8; 512];
    if !read(token_index, &mut raw) {
        return None;
    }
    let index_matches = raw
        .chunks_exact(2)
        .zip(offsets)
        .all(|(pair, offset)| u16::from_le_bytes([pair[0], pair[1]]) == offset);
    index_matches.then_some((token_table, token_index))
}

/// Where the tables before the token table are.
struct NamesFound {
    num_syms: u64,
    names: u64,
    offsets: u64,
    relative_base: u64,
}

impl NamesFound {
    fn location(self, (token_table, token_index): (u64, u64), stext: u64) -> KallsymsLocation {
        KallsymsLocation {
            num_syms: self.num_syms,
            names: self.names,
            token_table,
            token_index,
            offsets: self.offsets,
            relative_base: Some(self.relative_base),
            stext,
        }
    }
}

/// `kallsyms_num_syms`, `kallsyms_names`, `kallsyms_offsets` and `kallsyms_relative_base`
/// before a token table at `token_table`: the count at each aligned place whose markers
/// (one `u32` per 256 names, the first 0, rising, inside the names) end right before the token
/// table, names starting after the count.
fn names_before(token_table: u64, read: &dyn Fn(u64, &mut [u8]) -> bool) -> Option<NamesFound> {
    let lowest = token_table.saturating_sub(SCAN_BACK);
    let mut region = vec![0u8; (token_table - lowest) as usize];
    read_lenient(lowest, &mut region, read);
    let word = |addr: u64| -> Option<u32> {
        let at = usize::try_from(addr.checked_sub(lowest)?).ok()?;
        Some(u32::from_le_bytes(region.get(at..at + 4)?.try_into().ok()?))
    };
    // Candidates for the names' start, nearest first.
    let mut names = token_table.checked_sub(LABEL_ALIGN)?;
    while names >= lowest + 2 * LABEL_ALIGN {
        let count_at = names - LABEL_ALIGN;
        if let (Some(count), Some(0)) = (word(count_at), word(count_at + 4)) {
            if (256..=MAX_SYMBOLS).contains(&count) {
                let markers_len = u64::from(count.div_ceil(256)) * 4;
                let markers = token_table
                    .checked_sub(markers_len)
                    .map(|m| m - m % LABEL_ALIGN)?;
                if markers > names && markers_fit(&word, markers, count, markers - names) {
                    let offsets_len = (u64::from(count) * 4).next_multiple_of(LABEL_ALIGN);
                    let relative_base = count_at.checked_sub(LABEL_ALIGN)?;
                    let offsets = relative_base.checked_sub(offsets_len)?;
                    return Some(NamesFound {
                        num_syms: count_at,
                        names,
                        offsets,
                        relative_base,
                    });
                }
            }
        }
        names -= LABEL_ALIGN;
    }
    None
}

/// The markers at `markers` for `count` names start at 0 and rise, staying inside the
/// `names_len` bytes of names (each marked name at least 2 bytes a name further on).
fn markers_fit(
    word: &dyn Fn(u64) -> Option<u32>,
    markers: u64,
    count: u32,
    names_len: u64,
) -> bool {
    let n = count.div_ceil(256);
    let mut previous = None;
    for i in 0..u64::from(n) {
        let Some(value) = word(markers + 4 * i) else {
            return false;
        };
        let ok = match previous {
            None => value == 0,
            Some(p) => value > p && u64::from(value - p) >= 256 * 2,
        };
        if !ok || u64::from(value) >= names_len {
            return false;
        }
        previous = Some(value);
    }
    true
}

/// Fills `buf` from `addr`, page by page where a whole read fails; unreadable pages are zeros.
fn read_lenient(addr: u64, buf: &mut [u8], read: &dyn Fn(u64, &mut [u8]) -> bool) {
    if read(addr, buf) {
        return;
    }
    let mut at = addr;
    let mut rest = &mut buf[..];
    while !rest.is_empty() {
        let page_left = (4096 - at % 4096) as usize;
        let (piece, tail) = rest.split_at_mut(page_left.min(rest.len()));
        if !read(at, piece) {
            piece.fill(0);
        }
        at += piece.len() as u64;
        rest = tail;
    }
}

/// Why the kernel's kallsyms could not be read; each names the table and address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KallsymsError {
    #[error("kallsyms: cannot read {what} at {addr:#x}")]
    Unreadable { what: &'static str, addr: u64 },
    #[error("kallsyms: {what}")]
    Bad { what: String },
}

/// How `kallsyms_offsets` turn into addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetEncoding {
    BaseRelative,
    AbsolutePercpu,
    PlaceRelative,
}

/// The decoded table: names, `nm` letters and runtime addresses, in the kernel's order
/// (by address).
#[derive(Debug, Clone, Default)]
pub struct Kallsyms {
    names: String,
    /// Start of each name in `names`; one more entry than there are symbols.
    name_starts: Vec<u32>,
    kinds: Vec<u8>,
    addresses: Vec<u64>,
    encoding: Option<OffsetEncoding>,
}

/// One symbol of [`Kallsyms`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KallsymsSymbol<'a> {
    pub name: &'a str,
    /// `nm`'s letter as the build recorded it (`T`, `t`, `D`, `b`, ...).
    pub kind: char,
    /// Where the running kernel has it.
    pub address: u64,
}

impl Kallsyms {
    /// Reads and decodes the tables at `location` through `read` (a reader of the kernel's
    /// virtual memory that fills the buffer or says it cannot). `long_lengths` says whether
    /// name lengths may take two bytes (6.1 on); `None` tries both.
    pub fn read(
        location: &KallsymsLocation,
        long_lengths: Option<bool>,
        read: &dyn Fn(u64, &mut [u8]) -> bool,
    ) -> Result<Kallsyms, KallsymsError> {
        let mem = Reader { read };
        let count = mem.u32(location.num_syms, "kallsyms_num_syms")?;
        if count == 0 || count > MAX_SYMBOLS {
            return Err(KallsymsError::Bad {
                what: format!("kallsyms_num_syms is {count} (at most {MAX_SYMBOLS} expected)"),
            });
        }
        let tokens = Tokens::read(&mem, location)?;
        let mut offsets = vec![0u8; count as usize * 4];
        mem.bytes(location.offsets, &mut offsets, "kallsyms_offsets")?;
        let offsets: Vec<u32> = offsets
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let relative_base = location
            .relative_base
            .map(|at| mem.u64(at, "kallsyms_relative_base"))
            .transpose()?;
        let attempts: &[bool] = match long_lengths {
            Some(true) => &[true],
            Some(false) => &[false],
            None => &[true, false],
        };
        let mut last_error = None;
        for &long in attempts {
            let table = Names::decode(&mem, location.names, count, long, &tokens)
                .and_then(|names| names.with_addresses(&offsets, relative_base, location));
            match table {
                Ok(table) => return Ok(table),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or(KallsymsError::Bad {
            what: "no name-length encoding to try".into(),
        }))
    }

    pub fn len(&self) -> usize {
        self.addresses.len()
    }

    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }

    /// Which reading of `kallsyms_offsets` matched `_stext`.
    pub fn encoding(&self) -> Option<OffsetEncoding> {
        self.encoding
    }

    pub fn get(&self, index: usize) -> Option<KallsymsSymbol<'_>> {
        let start = *self.name_starts.get(index)? as usize;
        let end = *self.name_starts.get(index + 1)? as usize;
        Some(KallsymsSymbol {
            name: self.names.get(start..end)?,
            kind: char::from(*self.kinds.get(index)?),
            address: *self.addresses.get(index)?,
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = KallsymsSymbol<'_>> + '_ {
        (0..self.len()).filter_map(|index| self.get(index))
    }
}

struct Reader<'r> {
    read: &'r dyn Fn(u64, &mut [u8]) -> bool,
}

impl Reader<'_> {
    fn bytes(&self, addr: u64, buf: &mut [u8], what: &'static str) -> Result<(), KallsymsError> {
        if (self.read)(addr, buf) {
            Ok(())
        } else {
            Err(KallsymsError::Unreadable { what, addr })
        }
    }

    fn u32(&self, addr: u64, what: &'static str) -> Result<u32, KallsymsError> {
        let mut b = [0u8; 4];
        self.bytes(addr, &mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&self, addr: u64, what: &'static str) -> Result<u64, KallsymsError> {
        let mut b = [0u8; 8];
        self.bytes(addr, &mut b, what)?;
        Ok(u64::from_le_bytes(b))
    }
}

/// The 256 tokens, each a byte string.
struct Tokens {
    table: Vec<u8>,
    index: [u16; 256],
}

impl Tokens {
    fn read(mem: &Reader, location: &KallsymsLocation) -> Result<Tokens, KallsymsError> {
        let mut raw = [0u8; 512];
        mem.bytes(location.token_index, &mut raw, "kallsyms_token_index")?;
        let mut index = [0u16; 256];
        for (slot, pair) in index.iter_mut().zip(raw.chunks_exact(2)) {
            *slot = u16::from_le_bytes([pair[0], pair[1]]);
        }
        // The table ends at the NUL after its last token; the index says where that starts.
        let last = u64::from(index.iter().copied().max().unwrap_or(0));
        let mut table = vec![0u8; last as usize];
        mem.bytes(location.token_table, &mut table, "kallsyms_token_table")?;
        let mut byte = [0u8; 1];
        for at in 0..MAX_TOKEN {
            mem.bytes(
                location.token_table + last + at,
                &mut byte,
                "kallsyms_token_table",
            )?;
            table.push(byte[0]);
            if byte[0] == 0 {
                return Ok(Tokens { table, index });
            }
        }
        Err(KallsymsError::Bad {
            what: format!(
                "kallsyms_token_table's last token at {:#x} has no end",
                location.token_table + last
            ),
        })
    }

    fn token(&self, number: u8) -> &[u8] {
        let start = usize::from(self.index[usize::from(number)]);
        let rest = self.table.get(start..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        &rest[..end]
    }
}

/// `kallsyms_names` decoded, before addresses.
struct Names {
    names: String,
    name_starts: Vec<u32>,
    kinds: Vec<u8>,
}

impl Names {
    fn decode(
        mem: &Reader,
        at: u64,
        count: u32,
        long_lengths: bool,
        tokens: &Tokens,
    ) -> Result<Names, KallsymsError> {
        let mut source = Chunked {
            mem,
            start: at,
            next: at,
            buf: Vec::new(),
            pos: 0,
        };
        let mut out = Names {
            names: String::new(),
            name_starts: Vec::with_capacity(count as usize + 1),
            kinds: Vec::with_capacity(count as usize),
        };
        let mut name = Vec::with_capacity(MAX_NAME);
        for number in 0..count {
            let mut len = usize::from(source.byte()?);
            if long_lengths && len & 0x80 != 0 {
                let high = source.byte()?;
                if high & 0x80 != 0 {
                    return Err(bad_name(number, "a name length longer than two bytes"));
                }
                len = (len & 0x7f) | usize::from(high) << 7;
            }
            // Every token is at least one character.
            if len == 0 || len > MAX_NAME + 1 {
                return Err(bad_name(number, &format!("a length of {len} tokens")));
            }
            name.clear();
            for _ in 0..len {
                name.extend_from_slice(tokens.token(source.byte()?));
                if name.len() > MAX_NAME + 1 {
                    return Err(bad_name(number, "a name longer than KSYM_NAME_LEN"));
                }
            }
            let (&kind, rest) = name
                .split_first()
                .ok_or_else(|| bad_name(number, "no type letter"))?;
            let text = std::str::from_utf8(rest)
                .map_err(|_| bad_name(number, "a name that is not text"))?;
            if text.is_empty() || !kind.is_ascii_alphabetic() {
                return Err(bad_name(number, "no name after its type letter"));
            }
            out.name_starts.push(out.names.len() as u32);
            out.names.push_str(text);
            out.kinds.push(kind);
        }
        out.name_starts.push(out.names.len() as u32);
        Ok(out)
    }

    fn index_of(&self, wanted: &str) -> Option<usize> {
        (0..self.kinds.len()).find(|&i| {
            let (start, end) = (
                self.name_starts[i] as usize,
                self.name_starts[i + 1] as usize,
            );
            self.names.get(start..end) == Some(wanted)
        })
    }

    fn with_addresses(
        self,
        offsets: &[u32],
        relative_base: Option<u64>,
        location: &KallsymsLocation,
    ) -> Result<Kallsyms, KallsymsError> {
        let stext = self.index_of("_stext").ok_or_else(|| KallsymsError::Bad {
            what: "no _stext among the decoded names (wrong name-length encoding?)".into(),
        })?;
        // One offset per decoded name, so `_stext`'s is there; a miss is an error, not a panic.
        let offset = *offsets.get(stext).ok_or_else(|| KallsymsError::Bad {
            what: "kallsyms_offsets is shorter than kallsyms_names".into(),
        })?;
        let place = |i: usize, value: u32| {
            location
                .offsets
                .wrapping_add(4 * i as u64)
                .wrapping_add_signed(i64::from(value as i32))
        };
        let encoding = if relative_base
            .is_some_and(|base| base.wrapping_add(u64::from(offset)) == location.stext)
        {
            OffsetEncoding::BaseRelative
        } else if relative_base.is_some_and(|base| absolute_percpu(base, offset) == location.stext)
        {
            OffsetEncoding::AbsolutePercpu
        } else if place(stext, offset) == location.stext {
            OffsetEncoding::PlaceRelative
        } else {
            return Err(KallsymsError::Bad {
                what: format!(
                    "kallsyms_offsets do not put _stext at {:#x} in any known encoding",
                    location.stext
                ),
            });
        };
        let base = relative_base.unwrap_or(0);
        let addresses = offsets
            .iter()
            .enumerate()
            .map(|(i, &value)| match encoding {
                OffsetEncoding::BaseRelative => base.wrapping_add(u64::from(value)),
                OffsetEncoding::AbsolutePercpu => absolute_percpu(base, value),
                OffsetEncoding::PlaceRelative => place(i, value),
            })
            .collect();
        Ok(Kallsyms {
            names: self.names,
            name_starts: self.name_starts,
            kinds: self.kinds,
            addresses,
            encoding: Some(encoding),
        })
    }
}

fn absolute_percpu(base: u64, value: u32) -> u64 {
    let value = value as i32;
    if value >= 0 {
        value as u64
    } else {
        base.wrapping_sub(1).wrapping_sub(i64::from(value) as u64)
    }
}

fn bad_name(number: u32, what: &str) -> KallsymsError {
    KallsymsError::Bad {
        what: format!("kallsyms_names: symbol {number} has {what}"),
    }
}

/// `kallsyms_names` read a piece at a time: its length is known only by walking it.
struct Chunked<'m, 'r> {
    mem: &'m Reader<'r>,
    start: u64,
    next: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl Chunked<'_, '_> {
    fn byte(&mut self) -> Result<u8, KallsymsError> {
        if self.pos == self.buf.len() {
            self.refill()?;
        }
        let byte = self.buf[self.pos];
        self.pos += 1;
        Ok(byte)
    }

    /// The next piece, up to the end of its page first so that a table ending just before
    /// an unreadable page still decodes.
    fn refill(&mut self) -> Result<(), KallsymsError> {
        if self.next.wrapping_sub(self.start) >= MAX_NAMES_BYTES {
            return Err(KallsymsError::Bad {
                what: format!(
                    "kallsyms_names at {:#x} runs past {} MiB",
                    self.start,
                    MAX_NAMES_BYTES >> 20
                ),
            });
        }
        let to_page_end = (0x1000 - (self.next & 0xfff)) as usize;
        let len = if self.buf.is_empty() {
            to_page_end
        } else {
            NAMES_CHUNK
        };
        self.buf.resize(len, 0);
        if !(self.mem.read)(self.next, &mut self.buf) {
            // A smaller read: the table may end inside the piece.
            self.buf.truncate(to_page_end.min(len));
            self.mem.bytes(self.next, &mut self.buf, "kallsyms_names")?;
        }
        self.next = self.next.wrapping_add(self.buf.len() as u64);
        self.pos = 0;
        Ok(())
    }
}

/// Decodes `data` as a kernel image holding the tables (the fuzz target): the first 64
/// bytes give the location, the rest is memory starting at address 0x1000, also scanned for
/// the tables as an image before 6.0 is.
pub fn fuzz_kallsyms(data: &[u8]) -> usize {
    let word = |i: usize| {
        data.get(i * 8..i * 8 + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    let location = KallsymsLocation {
        num_syms: word(0),
        names: word(1),
        token_table: word(2),
        token_index: word(3),
        offsets: word(4),
        relative_base: Some(word(5)).filter(|v| v & 1 == 0),
        stext: word(6),
    };
    // Memory comes in whole pages, as in a dump.
    let mut memory = data.get(64..).unwrap_or_default().to_vec();
    memory.resize(memory.len().next_multiple_of(0x1000), 0);
    let read = |addr: u64, buf: &mut [u8]| {
        let Some(start) = addr.checked_sub(0x1000).map(|s| s as usize) else {
            return false;
        };
        match memory.get(start..start.saturating_add(buf.len())) {
            Some(src) if src.len() == buf.len() => {
                buf.copy_from_slice(src);
                true
            }
            _ => false,
        }
    };
    let long = match word(7) & 3 {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    };
    let decoded = Kallsyms::read(&location, long, &read).map_or(0, |k| k.len());
    // The same memory as an image to scan for the tables (kernels before 6.0).
    let scanned = KallsymsLocation::scan(0x1000, memory.len() as u64, &read)
        .ok()
        .and_then(|found| Kallsyms::read(&found, None, &read).ok())
        .map_or(0, |k| k.len());
    decoded + scanned
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens as scripts/kallsyms.c makes them: some bytes stand for common substrings, the
    /// others for themselves.
    const WORDS: [&str; 4] = ["kallsyms_", "_st", "text", "per_cpu"];

    struct Image {
        regions: Vec<(u64, Vec<u8>)>,
    }

    impl Image {
        fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
            self.regions.iter().any(|(start, data)| {
                let Some(off) = addr.checked_sub(*start).map(|o| o as usize) else {
                    return false;
                };
                match data.get(off..off + buf.len()) {
                    Some(src) => {
                        buf.copy_from_slice(src);
                        true
                    }
                    None => false,
                }
            })
        }
    }

    fn token_strings() -> Vec<Vec<u8>> {
        (0u8..=255)
            .map(|b| match b {
                // No name holds a NUL byte: its slot carries a token, as in a real table.
                0 => b"zz".to_vec(),
                1..=4 => WORDS[usize::from(b) - 1].as_bytes().to_vec(),
                _ => vec![b],
            })
            .collect()
    }

    fn encode(name: &str, tokens: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = name.as_bytes();
        while !rest.is_empty() {
            let word = (1u8..=4).find(|&t| rest.starts_with(&tokens[usize::from(t)]));
            match word {
                Some(t) => {
                    out.push(t);
                    rest = &rest[tokens[usize::from(t)].len()..];
                }
                None => {
                    out.push(rest[0]);
                    rest = &rest[1..];
                }
            }
        }
        out
    }

    const NUM: u64 = 0x1000;
    const INDEX: u64 = 0x2000;
    const TABLE: u64 = 0x3000;
    const OFFSETS: u64 = 0x5000;
    const BASE: u64 = 0x6000;
    const NAMES: u64 = 0x10000;

    /// A kernel image holding `symbols` (letter+name, offset value) in the given layout.
    fn image(symbols: &[(&str, u32)], base: Option<u64>, long: bool) -> Image {
        let tokens = token_strings();
        let mut table = Vec::new();
        let mut index = Vec::new();
        for token in &tokens {
            index.extend_from_slice(&(table.len() as u16).to_le_bytes());
            table.extend_from_slice(token);
            table.push(0);
        }
        let mut names = Vec::new();
        for (name, _) in symbols {
            let encoded = encode(name, &tokens);
            let len = encoded.len();
            if long && len > 0x7f {
                names.push(0x80 | (len & 0x7f) as u8);
                names.push((len >> 7) as u8);
            } else {
                names.push(len as u8);
            }
            names.extend_from_slice(&encoded);
        }
        let offsets: Vec<u8> = symbols.iter().flat_map(|(_, v)| v.to_le_bytes()).collect();
        let mut regions = vec![
            (NUM, (symbols.len() as u32).to_le_bytes().to_vec()),
            (INDEX, index),
            (TABLE, table),
            (OFFSETS, offsets),
            (NAMES, names),
        ];
        if let Some(base) = base {
            regions.push((BASE, base.to_le_bytes().to_vec()));
        }
        // Memory comes in whole pages.
        for (_, data) in &mut regions {
            data.resize(data.len().next_multiple_of(0x1000), 0);
        }
        Image { regions }
    }

    fn location(stext: u64, base: bool) -> KallsymsLocation {
        KallsymsLocation {
            num_syms: NUM,
            names: NAMES,
            token_table: TABLE,
            token_index: INDEX,
            offsets: OFFSETS,
            relative_base: base.then_some(BASE),
            stext,
        }
    }

    fn decode(image: &Image, location: &KallsymsLocation) -> Result<Kallsyms, KallsymsError> {
        Kallsyms::read(location, None, &|a, b| image.read(a, b))
    }

    const KERNEL: u64 = 0xffff_ffff_8100_0000;

    #[test]
    fn base_relative_names_letters_and_addresses() {
        let image = image(
            &[
                ("T_stext", 0),
                ("tkallsyms_lookup", 0x40),
                ("Dper_cpu_x", 0x1000),
            ],
            Some(KERNEL),
            true,
        );
        let table = decode(&image, &location(KERNEL, true)).unwrap();
        assert_eq!(table.encoding(), Some(OffsetEncoding::BaseRelative));
        let got: Vec<_> = table.iter().map(|s| (s.kind, s.name, s.address)).collect();
        assert_eq!(
            got,
            [
                ('T', "_stext", KERNEL),
                ('t', "kallsyms_lookup", KERNEL + 0x40),
                ('D', "per_cpu_x", KERNEL + 0x1000)
            ]
        );
    }

    #[test]
    fn absolute_percpu_keeps_small_values_absolute() {
        // Per-CPU symbols are small non-negative values; kernel ones are -(offset+1) from
        // the base.
        let image = image(
            &[
                ("Dfixed_percpu_data", 0),
                ("Dcurrent_task", 0x1e340),
                ("T_stext", !0x1000),
            ],
            Some(KERNEL),
            false,
        );
        let table = decode(&image, &location(KERNEL + 0x1000, true)).unwrap();
        assert_eq!(table.encoding(), Some(OffsetEncoding::AbsolutePercpu));
        let addrs: Vec<_> = table.iter().map(|s| s.address).collect();
        assert_eq!(addrs, [0, 0x1e340, KERNEL + 0x1000]);
    }

    #[test]
    fn place_relative_offsets_count_from_their_own_entry() {
        let stext = OFFSETS + 4 + 0x100;
        let image = image(&[("Tstartup_64", 0xfc), ("T_stext", 0x100)], None, true);
        let table = decode(&image, &location(stext, false)).unwrap();
        assert_eq!(table.encoding(), Some(OffsetEncoding::PlaceRelative));
        assert_eq!(table.get(0).unwrap().address, OFFSETS + 0xfc);
        assert_eq!(table.get(1).unwrap().address, stext);
    }

    #[test]
    fn long_names_take_a_two_byte_length() {
        let long_name = format!("t{}", "x".repeat(300));
        let image = image(&[("T_stext", 0), (&long_name, 8)], Some(KERNEL), true);
        let table = decode(&image, &location(KERNEL, true)).unwrap();
        assert_eq!(table.get(1).unwrap().name, &long_name[1..]);
        // Read as one-byte lengths the same bytes do not decode.
        let short = Kallsyms::read(&location(KERNEL, true), Some(false), &|a, b| {
            image.read(a, b)
        });
        assert!(short.is_err());
    }

    #[test]
    fn damaged_tables_are_errors_that_say_where() {
        let good = image(&[("T_stext", 0)], Some(KERNEL), true);
        // _stext elsewhere than VMCOREINFO says: no encoding fits.
        let err = decode(&good, &location(KERNEL + 8, true)).unwrap_err();
        assert!(err.to_string().contains("_stext"), "{err}");
        // A huge count.
        let mut huge = image(&[("T_stext", 0)], Some(KERNEL), true);
        huge.regions[0].1 = u32::MAX.to_le_bytes().to_vec();
        assert!(decode(&huge, &location(KERNEL, true)).is_err());
        // More symbols than names: the walk runs into what follows the table and stops.
        let mut short = image(&[("T_stext", 0)], Some(KERNEL), true);
        short.regions[0].1[..4].copy_from_slice(&2u32.to_le_bytes());
        let err = decode(&short, &location(KERNEL, true)).unwrap_err();
        assert!(err.to_string().contains("symbol 1 "), "{err}");
        // Names running to the end of readable memory.
        let mut cut = image(&[("T_stext", 0)], Some(KERNEL), true);
        cut.regions[0].1[..4].copy_from_slice(&1000u32.to_le_bytes());
        // Each further name: 97 tokens of 'a'.
        cut.regions[4].1.iter_mut().skip(6).for_each(|b| *b = b'a');
        let err = decode(&cut, &location(KERNEL, true)).unwrap_err();
        assert_eq!(
            err,
            KallsymsError::Unreadable {
                what: "kallsyms_names",
                addr: NAMES + 0x1000
            }
        );
        // A token table whose last token never ends.
        let mut endless = image(&[("T_stext", 0)], Some(KERNEL), true);
        endless.regions[2]
            .1
            .iter_mut()
            .for_each(|b| *b = (*b).max(1));
        assert!(decode(&endless, &location(KERNEL, true)).is_err());
        // Unreadable offsets.
        let mut no_offsets = image(&[("T_stext", 0)], Some(KERNEL), true);
        no_offsets.regions.remove(3);
        assert_eq!(
            decode(&no_offsets, &location(KERNEL, true)).unwrap_err(),
            KallsymsError::Unreadable {
                what: "kallsyms_offsets",
                addr: OFFSETS
            }
        );
    }

    /// A 5.10-style image: text, then the tables in `scripts/kallsyms.c`'s order at 8-byte
    /// aligned labels; returns it (one region at `at`) and where each table is.
    fn contiguous_image(
        at: u64,
        symbols: &[(String, u32)],
        decoy: bool,
    ) -> (Image, KallsymsLocation) {
        let tokens = token_strings();
        let mut bytes = vec![0x90u8; 0x3000];
        if decoy {
            // The digit tokens in text, with no index after them.
            bytes.extend_from_slice(DIGIT_TOKENS);
            bytes.extend_from_slice(&[0xcc; 600]);
        }
        let align = |b: &mut Vec<u8>| b.resize(b.len().next_multiple_of(8), 0);
        align(&mut bytes);
        let offsets = at + bytes.len() as u64;
        for (_, value) in symbols {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        align(&mut bytes);
        let relative_base = at + bytes.len() as u64;
        bytes.extend_from_slice(&KERNEL.to_le_bytes());
        let num_syms = at + bytes.len() as u64;
        bytes.extend_from_slice(&(symbols.len() as u32).to_le_bytes());
        align(&mut bytes);
        let names = at + bytes.len() as u64;
        let mut markers = Vec::new();
        for (i, (name, _)) in symbols.iter().enumerate() {
            if i % 256 == 0 {
                markers.push((at + bytes.len() as u64 - names) as u32);
            }
            let encoded = encode(name, &tokens);
            bytes.push(encoded.len() as u8);
            bytes.extend_from_slice(&encoded);
        }
        align(&mut bytes);
        for m in markers {
            bytes.extend_from_slice(&m.to_le_bytes());
        }
        align(&mut bytes);
        let token_table = at + bytes.len() as u64;
        let mut index = Vec::new();
        let start = bytes.len();
        for token in &tokens {
            index.extend_from_slice(&((bytes.len() - start) as u16).to_le_bytes());
            bytes.extend_from_slice(token);
            bytes.push(0);
        }
        align(&mut bytes);
        let token_index = at + bytes.len() as u64;
        bytes.extend_from_slice(&index);
        bytes.resize(bytes.len().next_multiple_of(0x1000), 0);
        let location = KallsymsLocation {
            num_syms,
            names,
            token_table,
            token_index,
            offsets,
            relative_base: Some(relative_base),
            stext: at,
        };
        (
            Image {
                regions: vec![(at, bytes)],
            },
            location,
        )
    }

    fn many_symbols() -> Vec<(String, u32)> {
        let mut symbols = vec![("T_stext".to_owned(), 0)];
        symbols.extend((1..600u32).map(|i| (format!("tfunc_{i:04}"), i * 16)));
        symbols
    }

    #[test]
    fn scan_finds_tables_that_vmcoreinfo_does_not_name() {
        let symbols = many_symbols();
        for decoy in [false, true] {
            let (image, expected) = contiguous_image(KERNEL, &symbols, decoy);
            let read = |a: u64, b: &mut [u8]| image.read(a, b);
            let found = KallsymsLocation::scan(KERNEL, 1 << 20, &read).unwrap();
            assert_eq!(found, expected, "decoy {decoy}");
            let table = Kallsyms::read(&found, None, &read).unwrap();
            assert_eq!(table.len(), symbols.len());
            let last = table.get(symbols.len() - 1).unwrap();
            assert_eq!((last.name, last.address), ("func_0599", KERNEL + 599 * 16));
        }
    }

    #[test]
    fn scan_says_when_there_are_no_tables() {
        let symbols = many_symbols();
        let (image, location) = contiguous_image(KERNEL, &symbols, true);
        // The index damaged: the token table is not proven, nothing else matches.
        let mut damaged = image.regions[0].1.clone();
        let at = (location.token_index - KERNEL) as usize + 2 * 48;
        damaged[at] ^= 0xff;
        let image = Image {
            regions: vec![(KERNEL, damaged)],
        };
        let err = KallsymsLocation::scan(KERNEL, 1 << 20, &|a, b| image.read(a, b)).unwrap_err();
        assert!(
            err.to_string().contains("no kallsyms tables found"),
            "{err}"
        );
        // Markers that do not fit the names: no count is accepted.
        let (image, location) = contiguous_image(KERNEL, &symbols, false);
        let mut damaged = image.regions[0].1.clone();
        let markers = (location.token_table - KERNEL) as usize - 8;
        damaged[markers..markers + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let image = Image {
            regions: vec![(KERNEL, damaged)],
        };
        assert!(KallsymsLocation::scan(KERNEL, 1 << 20, &|a, b| image.read(a, b)).is_err());
        // Nothing readable at all.
        assert!(KallsymsLocation::scan(KERNEL, 1 << 20, &|_, _| false).is_err());
    }

    #[test]
    fn scan_gives_up_on_an_image_of_forged_token_tables() {
        // Proven token tables (each with its index) and no names anywhere.
        let tokens = token_strings();
        let mut bytes = vec![0u8; 0x1000];
        for _ in 0..2 * MAX_TOKEN_TABLES {
            bytes.resize(bytes.len().next_multiple_of(8), 0);
            let start = bytes.len();
            let mut index = Vec::new();
            for token in &tokens {
                index.extend_from_slice(&((bytes.len() - start) as u16).to_le_bytes());
                bytes.extend_from_slice(token);
                bytes.push(0);
            }
            bytes.resize(bytes.len().next_multiple_of(8), 0);
            bytes.extend_from_slice(&index);
        }
        bytes.resize(bytes.len().next_multiple_of(0x1000), 0);
        let image = Image {
            regions: vec![(KERNEL, bytes)],
        };
        let err = KallsymsLocation::scan(KERNEL, 1 << 20, &|a, b| image.read(a, b)).unwrap_err();
        assert!(
            err.to_string().contains("token tables without names"),
            "{err}"
        );
    }

    #[test]
    fn fuzz_entry_survives_garbage() {
        for len in [0, 7, 64, 65, 300] {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            fuzz_kallsyms(&data);
        }
    }
}
