//! gdb's C expressions as `p` takes them: globals, `.`, `->`, `[i]`, casts (`(struct
//! task_struct *)0xffff...`), unary `*`, `&`, `-`, `!`, `~`, `sizeof`, `+ - * / %`, and
//! comparisons. Errors name the column (1-based) where the expression went wrong.

use kdive_kernel::symbols::{CType, Composite, TypeRef};

use crate::typed::{Blob, Env, Reader, TypeSpec, TypedValue, MAX_DEPTH};

/// Tokens (and so nesting) one expression may have.
const MAX_TOKENS: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// 1-based column in the expression.
    pub column: usize,
    pub what: String,
}

impl std::fmt::Display for ExprError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at column {}", self.what, self.column)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num { value: u128, hex: bool },
    Ident(String),
    Punct(&'static str),
    End,
}

fn tokenize(text: &str) -> Result<Vec<(Tok, usize)>, ExprError> {
    const PUNCTS: [&str; 24] = [
        "->", "==", "!=", "<=", ">=", "<<", ">>", "&&", "||", "(", ")", "[", "]", ".", "*", "&",
        "+", "-", "/", "%", "!", "~", "|", "^",
    ];
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if out.len() > MAX_TOKENS {
            return Err(ExprError {
                column: i + 1,
                what: "expression too long".into(),
            });
        }
        let c = bytes.get(i).copied().unwrap_or(0);
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c.is_ascii_digit() {
            while i < bytes.len() && bytes.get(i).is_some_and(|b| b.is_ascii_alphanumeric()) {
                i += 1;
            }
            let word = text.get(start..i).unwrap_or("");
            let lower = word.to_ascii_lowercase();
            let digits = lower.trim_end_matches(['u', 'l']);
            let parsed = match digits.strip_prefix("0x") {
                Some(h) => u128::from_str_radix(h, 16).map(|v| (v, true)),
                None if digits.len() > 1 && digits.starts_with('0') => {
                    u128::from_str_radix(digits.get(1..).unwrap_or("0"), 8).map(|v| (v, false))
                }
                None => digits.parse::<u128>().map(|v| (v, false)),
            };
            let (value, hex) = parsed.map_err(|_| ExprError {
                column: start + 1,
                what: format!("invalid number \"{word}\""),
            })?;
            out.push((Tok::Num { value, hex }, start + 1));
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' || c == b'$' {
            while i < bytes.len()
                && bytes
                    .get(i)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$')
            {
                i += 1;
            }
            out.push((
                Tok::Ident(text.get(start..i).unwrap_or("").into()),
                start + 1,
            ));
            continue;
        }
        if c == b'<' || c == b'>' {
            let two = text.get(i..i + 2).unwrap_or("");
            let p: &'static str = match two {
                "<=" => "<=",
                ">=" => ">=",
                "<<" => "<<",
                ">>" => ">>",
                _ if c == b'<' => "<",
                _ => ">",
            };
            i += p.len();
            out.push((Tok::Punct(p), start + 1));
            continue;
        }
        match PUNCTS
            .iter()
            .find(|p| text.get(i..).is_some_and(|t| t.starts_with(**p)))
        {
            Some(p) => {
                i += p.len();
                out.push((Tok::Punct(p), start + 1));
            }
            None => {
                return Err(ExprError {
                    column: start + 1,
                    what: format!("unexpected character '{}'", char::from(c)),
                })
            }
        }
    }
    out.push((Tok::End, text.len() + 1));
    Ok(out)
}

/// A value's type: a type of the kernel with `pointers` more levels of `*` (what `&x` and
/// casts to pointers make).
#[derive(Debug, Clone, Copy)]
pub(crate) struct VType {
    pub base: TypeRef,
    pub pointers: usize,
}

#[derive(Debug, Clone)]
pub(crate) enum Loc {
    /// An object in the dump.
    Mem(u64),
    /// A computed value's little-endian bytes.
    Imm(Vec<u8>),
}

#[derive(Debug, Clone)]
pub(crate) struct Val {
    pub ty: VType,
    pub loc: Loc,
}

/// The evaluator over one environment.
pub(crate) struct Eval<'e, 'a> {
    pub env: &'e Env<'a>,
    toks: Vec<(Tok, usize)>,
    at: usize,
    depth: usize,
}

fn int_named(env: &Env<'_>, name: &str, column: usize) -> Result<TypeRef, ExprError> {
    env.types.c_type(name).map_err(|_| ExprError {
        column,
        what: format!("no type `{name}` for a number"),
    })
}

impl<'e, 'a> Eval<'e, 'a> {
    pub fn new(env: &'e Env<'a>, text: &str) -> Result<Eval<'e, 'a>, ExprError> {
        Ok(Eval {
            env,
            toks: tokenize(text)?,
            at: 0,
            depth: 0,
        })
    }

    /// Evaluates the whole expression.
    pub fn run(&mut self) -> Result<Val, ExprError> {
        let v = self.comparison()?;
        match self.peek() {
            Tok::End => Ok(v),
            t => Err(self.err(format!("unexpected {}", describe(&t)))),
        }
    }

    fn peek(&self) -> Tok {
        self.toks.get(self.at).map_or(Tok::End, |(t, _)| t.clone())
    }

    fn column(&self) -> usize {
        self.toks.get(self.at).map_or(1, |(_, c)| *c)
    }

    fn err(&self, what: impl Into<String>) -> ExprError {
        ExprError {
            column: self.column(),
            what: what.into(),
        }
    }

    fn eat(&mut self, p: &str) -> bool {
        if matches!(self.peek(), Tok::Punct(q) if q == p) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, p: &str) -> Result<(), ExprError> {
        if self.eat(p) {
            Ok(())
        } else {
            Err(self.err(format!("expected '{p}'")))
        }
    }

    /// A whole (sub)expression: C's binary operators by precedence, lowest first.
    fn comparison(&mut self) -> Result<Val, ExprError> {
        self.binary(0)
    }

    fn binary(&mut self, level: usize) -> Result<Val, ExprError> {
        const LEVELS: [&[&str]; 8] = [
            &["||"],
            &["&&"],
            &["|"],
            &["^"],
            &["&"],
            &["==", "!="],
            &["<=", ">=", "<", ">"],
            &["<<", ">>"],
        ];
        let Some(ops) = LEVELS.get(level) else {
            return self.additive();
        };
        let mut left = self.binary(level + 1)?;
        loop {
            let Some(op) = ops.iter().copied().find(|op| self.eat(op)) else {
                return Ok(left);
            };
            let col = self.column();
            let right = self.binary(level + 1)?;
            left = self.apply(op, left, right, col)?;
        }
    }

    fn apply(&self, op: &str, left: Val, right: Val, col: usize) -> Result<Val, ExprError> {
        match op {
            "==" | "!=" | "<=" | ">=" | "<" | ">" | "&&" | "||" => {
                let (a, b) = (self.scalar(&left, col)?, self.scalar(&right, col)?);
                let r = match op {
                    "==" => a == b,
                    "!=" => a != b,
                    "<=" => a <= b,
                    ">=" => a >= b,
                    "<" => a < b,
                    ">" => a > b,
                    "&&" => a != 0 && b != 0,
                    _ => a != 0 || b != 0,
                };
                self.int_value(i128::from(r), "int", col)
            }
            _ => {
                let (x, tx) = self.arith_operand(&left, col)?;
                let (y, ty) = self.arith_operand(&right, col)?;
                let (value, result_ty) = match op {
                    "&" => (x & y, common_type(&tx, &ty)),
                    "|" => (x | y, common_type(&tx, &ty)),
                    "^" => (x ^ y, common_type(&tx, &ty)),
                    _ => {
                        let shift = u32::try_from(y.clamp(0, 127)).unwrap_or(0);
                        let v = if op == "<<" { x << shift } else { x >> shift };
                        (v, tx.as_str())
                    }
                };
                self.int_value(wrap_to(value, result_ty), result_ty, col)
            }
        }
    }

    fn additive(&mut self) -> Result<Val, ExprError> {
        let mut left = self.multiplicative()?;
        loop {
            let op = if self.eat("+") {
                '+'
            } else if self.eat("-") {
                '-'
            } else {
                return Ok(left);
            };
            let col = self.column();
            let right = self.multiplicative()?;
            left = self.arith(op, left, right, col)?;
        }
    }

    fn multiplicative(&mut self) -> Result<Val, ExprError> {
        let mut left = self.unary()?;
        loop {
            let op = if self.eat("*") {
                '*'
            } else if self.eat("/") {
                '/'
            } else if self.eat("%") {
                '%'
            } else {
                return Ok(left);
            };
            let col = self.column();
            let right = self.unary()?;
            left = self.arith(op, left, right, col)?;
        }
    }

    fn unary(&mut self) -> Result<Val, ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH * 4 {
            return Err(self.err("expression nested too deeply"));
        }
        let r = self.unary_inner();
        self.depth -= 1;
        r
    }

    fn unary_inner(&mut self) -> Result<Val, ExprError> {
        let col = self.column();
        if self.eat("-") {
            let v = self.unary()?;
            let (value, ty) = self.arith_operand(&v, col)?;
            return self.int_value(value.wrapping_neg(), &ty, col);
        }
        if self.eat("!") {
            let v = self.unary()?;
            let x = self.scalar(&v, col)?;
            return self.int_value(i128::from(x == 0), "int", col);
        }
        if self.eat("~") {
            let v = self.unary()?;
            let (value, ty) = self.arith_operand(&v, col)?;
            return self.int_value(!value, &ty, col);
        }
        if self.eat("*") {
            let v = self.unary()?;
            return self.deref(v, col);
        }
        if self.eat("&") {
            let v = self.unary()?;
            return match v.loc {
                Loc::Mem(addr) => Ok(Val {
                    ty: VType {
                        base: v.ty.base,
                        pointers: v.ty.pointers + 1,
                    },
                    loc: Loc::Imm(addr.to_le_bytes().to_vec()),
                }),
                Loc::Imm(_) => Err(ExprError {
                    column: col,
                    what: "attempt to take address of value not located in memory".into(),
                }),
            };
        }
        if matches!(self.peek(), Tok::Ident(ref w) if w == "sizeof") {
            self.at += 1;
            let size = if self.is_cast() {
                self.expect("(")?;
                let spec = self.type_spec()?;
                self.expect(")")?;
                self.size_of(VType {
                    base: spec.ty,
                    pointers: spec.pointers,
                })
            } else {
                let v = self.unary()?;
                self.size_of(v.ty)
            };
            return self.int_value(i128::from(size), "unsigned long", col);
        }
        if self.is_cast() {
            self.expect("(")?;
            let spec = self.type_spec()?;
            self.expect(")")?;
            let v = self.unary()?;
            return self.cast(spec, v, col);
        }
        self.postfix()
    }

    /// `(` followed by a type name.
    fn is_cast(&self) -> bool {
        if !matches!(self.peek(), Tok::Punct("(")) {
            return false;
        }
        match self.toks.get(self.at + 1) {
            Some((Tok::Ident(w), _)) => self.is_type_word(w),
            _ => false,
        }
    }

    fn is_type_word(&self, w: &str) -> bool {
        const WORDS: [&str; 13] = [
            "struct", "union", "enum", "unsigned", "signed", "int", "long", "short", "char",
            "void", "_Bool", "const", "volatile",
        ];
        if WORDS.contains(&w) {
            return true;
        }
        self.env.types.c_type(w).is_ok()
            && self.env.types.c_variable(w).is_err()
            && !self.env.kernel.is_some_and(|k| k.has_symbol(w))
    }

    /// A type name up to the closing `)`: `struct x *`, `unsigned long`, `pid_t`.
    fn type_spec(&mut self) -> Result<TypeSpec, ExprError> {
        let col = self.column();
        let mut words: Vec<String> = Vec::new();
        while let Tok::Ident(w) = self.peek() {
            if w == "const" || w == "volatile" {
                self.at += 1;
                continue;
            }
            let tagged = matches!(
                words.last().map(String::as_str),
                Some("struct" | "union" | "enum")
            );
            if !words.is_empty() && !tagged && !self.is_base_word(&w) {
                break;
            }
            words.push(w);
            self.at += 1;
            if tagged {
                break;
            }
        }
        let mut pointers = 0;
        while self.eat("*") {
            pointers += 1;
        }
        let name = normalize_base(&words);
        let ty = self.env.types.c_type(&name).map_err(|_| ExprError {
            column: col,
            what: format!("no type named \"{name}\""),
        })?;
        Ok(TypeSpec { ty, pointers })
    }

    fn is_base_word(&self, w: &str) -> bool {
        ["unsigned", "signed", "int", "long", "short", "char"].contains(&w)
    }

    fn postfix(&mut self) -> Result<Val, ExprError> {
        let mut v = self.primary()?;
        loop {
            let col = self.column();
            if self.eat(".") {
                let name = self.ident()?;
                v = self.member(v, &name, col)?;
            } else if self.eat("->") {
                let name = self.ident()?;
                let target = self.deref(v, col)?;
                v = self.member(target, &name, col)?;
            } else if self.eat("[") {
                let index = self.comparison()?;
                self.expect("]")?;
                let i = self.scalar(&index, col)?;
                v = self.index(v, i, col)?;
            } else {
                return Ok(v);
            }
        }
    }

    fn ident(&mut self) -> Result<String, ExprError> {
        match self.peek() {
            Tok::Ident(w) => {
                self.at += 1;
                Ok(w)
            }
            t => Err(self.err(format!("expected a member name, not {}", describe(&t)))),
        }
    }

    fn primary(&mut self) -> Result<Val, ExprError> {
        let col = self.column();
        match self.peek() {
            Tok::Num { value, hex } => {
                self.at += 1;
                let ty = literal_type(value, hex);
                let v = i128::try_from(value).map_err(|_| ExprError {
                    column: col,
                    what: "number too large".into(),
                })?;
                self.int_value(v, ty, col)
            }
            Tok::Ident(name) => {
                self.at += 1;
                self.symbol(&name, col)
            }
            Tok::Punct("(") => {
                self.at += 1;
                let v = self.comparison()?;
                self.expect(")")?;
                Ok(v)
            }
            t => Err(self.err(format!("expected an expression, not {}", describe(&t)))),
        }
    }

    fn symbol(&self, name: &str, col: usize) -> Result<Val, ExprError> {
        let env = self.env;
        if let Ok(ty) = env.types.c_variable(name) {
            if let Some(addr) = env.kernel.and_then(|k| k.symbol(name).ok()) {
                return Ok(Val {
                    ty: VType {
                        base: ty,
                        pointers: 0,
                    },
                    loc: Loc::Mem(addr.0),
                });
            }
        }
        if let Ok(value) = env.types.enum_value(None, name) {
            return self.int_value(value, "int", col);
        }
        if let Some(addr) = env.kernel.and_then(|k| k.symbol(name).ok()) {
            // A symbol without a type (an assembly label, a function): gdb's `<text variable,
            // no debug info>`; its address as a pointer.
            return Ok(Val {
                ty: VType {
                    base: int_named(env, "long", col)?,
                    pointers: 0,
                },
                loc: Loc::Imm(addr.0.to_le_bytes().to_vec()),
            });
        }
        Err(ExprError {
            column: col,
            what: format!("No symbol \"{name}\" in current context"),
        })
    }

    pub fn int_value(&self, value: i128, ty: &str, col: usize) -> Result<Val, ExprError> {
        let base = int_named(self.env, ty, col)?;
        let size = self.size_of(VType { base, pointers: 0 }).clamp(1, 16);
        let bytes = value.to_le_bytes();
        Ok(Val {
            ty: VType { base, pointers: 0 },
            loc: Loc::Imm(bytes.get(..size as usize).unwrap_or_default().to_vec()),
        })
    }

    fn size_of(&self, ty: VType) -> u64 {
        if ty.pointers > 0 {
            8
        } else {
            self.env.sizeof(ty.base).unwrap_or(0)
        }
    }

    fn bytes(&self, v: &Val, col: usize) -> Result<Vec<u8>, ExprError> {
        match &v.loc {
            Loc::Imm(b) => Ok(b.clone()),
            Loc::Mem(addr) => {
                let size = self.size_of(v.ty).min(16);
                let mut buf = vec![0u8; usize::try_from(size).unwrap_or(16)];
                dump(self.env)
                    .map_err(|what| ExprError { column: col, what })?
                    .read(kdive_kernel::VirtAddr(*addr), &mut buf, "expression")
                    .map_err(|_| ExprError {
                        column: col,
                        what: format!("Cannot access memory at address {addr:#x}"),
                    })?;
                Ok(buf)
            }
        }
    }

    /// What the value is after typedefs: pointer (with its target), integer, or other.
    fn kind(&self, ty: VType) -> Result<Kind, ExprError> {
        if ty.pointers > 0 {
            return Ok(Kind::Pointer(VType {
                base: ty.base,
                pointers: ty.pointers - 1,
            }));
        }
        let (_, node) = self.env.strip(ty.base).map_err(|e| self.err(e))?;
        Ok(match node {
            CType::Pointer(t) => Kind::Pointer(VType {
                base: t,
                pointers: 0,
            }),
            CType::Array { elem, .. } => Kind::Array(VType {
                base: elem,
                pointers: 0,
            }),
            CType::Base { kind, size, .. } => Kind::Int {
                signed: kind.is_signed(),
                size,
            },
            CType::Enum { signed, size, .. } => Kind::Int { signed, size },
            CType::Struct(c) => Kind::Struct(c),
            _ => Kind::Other,
        })
    }

    /// An integer or pointer as a number.
    fn scalar(&self, v: &Val, col: usize) -> Result<i128, ExprError> {
        match self.kind(v.ty)? {
            Kind::Int { signed, .. } => Ok(le(&self.bytes(v, col)?, signed)),
            Kind::Pointer(_) => Ok(le(&self.bytes(v, col)?, false)),
            Kind::Array(_) => match v.loc {
                Loc::Mem(a) => Ok(i128::from(a)),
                Loc::Imm(_) => Err(ExprError {
                    column: col,
                    what: "not a number".into(),
                }),
            },
            _ => Err(ExprError {
                column: col,
                what: "not a number (a struct, union or function)".into(),
            }),
        }
    }

    /// An integer operand promoted as C does: its value and its promoted type's name.
    fn arith_operand(&self, v: &Val, col: usize) -> Result<(i128, String), ExprError> {
        match self.kind(v.ty)? {
            Kind::Int { signed, size } => {
                let value = le(&self.bytes(v, col)?, signed);
                Ok((value, promoted(size, signed).to_string()))
            }
            Kind::Pointer(_) => Ok((self.scalar(v, col)?, "unsigned long".into())),
            _ => Err(ExprError {
                column: col,
                what: "not a number (a struct, union or function)".into(),
            }),
        }
    }

    fn arith(&self, op: char, a: Val, b: Val, col: usize) -> Result<Val, ExprError> {
        let (ka, kb) = (self.kind(a.ty)?, self.kind(b.ty)?);
        match (&ka, &kb, op) {
            (Kind::Pointer(t) | Kind::Array(t), Kind::Int { .. }, '+' | '-') => {
                let base = match (&ka, &a.loc) {
                    (Kind::Array(_), Loc::Mem(addr)) => i128::from(*addr),
                    _ => self.scalar(&a, col)?,
                };
                let n = self.scalar(&b, col)?;
                let step = i128::from(self.size_of(*t).max(1));
                let off = n.wrapping_mul(step);
                let value = if op == '+' {
                    base.wrapping_add(off)
                } else {
                    base.wrapping_sub(off)
                };
                let addr = u64::try_from(value & i128::from(u64::MAX)).unwrap_or(0);
                return Ok(Val {
                    ty: VType {
                        base: t.base,
                        pointers: t.pointers + 1,
                    },
                    loc: Loc::Imm(addr.to_le_bytes().to_vec()),
                });
            }
            (Kind::Pointer(t), Kind::Pointer(_), '-') => {
                let diff = self.scalar(&a, col)? - self.scalar(&b, col)?;
                let step = i128::from(self.size_of(*t).max(1));
                return self.int_value(diff / step, "long", col);
            }
            _ => {}
        }
        let (x, tx) = self.arith_operand(&a, col)?;
        let (y, ty) = self.arith_operand(&b, col)?;
        let result_ty = common_type(&tx, &ty);
        let value = match op {
            '+' => x.wrapping_add(y),
            '-' => x.wrapping_sub(y),
            '*' => x.wrapping_mul(y),
            '/' | '%' => {
                if y == 0 {
                    return Err(ExprError {
                        column: col,
                        what: "Division by zero".into(),
                    });
                }
                if op == '/' {
                    x.wrapping_div(y)
                } else {
                    x.wrapping_rem(y)
                }
            }
            _ => 0,
        };
        let value = wrap_to(value, result_ty);
        self.int_value(value, result_ty, col)
    }

    fn deref(&self, v: Val, col: usize) -> Result<Val, ExprError> {
        match self.kind(v.ty)? {
            Kind::Pointer(t) => {
                let addr = u64::try_from(self.scalar(&v, col)? & i128::from(u64::MAX)).unwrap_or(0);
                Ok(Val {
                    ty: t,
                    loc: Loc::Mem(addr),
                })
            }
            Kind::Array(t) => match v.loc {
                Loc::Mem(addr) => Ok(Val {
                    ty: t,
                    loc: Loc::Mem(addr),
                }),
                Loc::Imm(_) => Err(ExprError {
                    column: col,
                    what: "array not in memory".into(),
                }),
            },
            _ => Err(ExprError {
                column: col,
                what: "Attempt to take contents of a non-pointer value".into(),
            }),
        }
    }

    fn index(&self, v: Val, i: i128, col: usize) -> Result<Val, ExprError> {
        let elem = match self.kind(v.ty)? {
            Kind::Array(t) | Kind::Pointer(t) => t,
            _ => {
                return Err(ExprError {
                    column: col,
                    what: "cannot subscript something of this type".into(),
                })
            }
        };
        let start = match (self.kind(v.ty)?, &v.loc) {
            (Kind::Array(_), Loc::Mem(addr)) => i128::from(*addr),
            _ => self.scalar(&v, col)?,
        };
        let step = i128::from(self.size_of(elem));
        let addr = start.wrapping_add(i.wrapping_mul(step));
        Ok(Val {
            ty: elem,
            loc: Loc::Mem(u64::try_from(addr & i128::from(u64::MAX)).unwrap_or(0)),
        })
    }

    fn member(&self, v: Val, name: &str, col: usize) -> Result<Val, ExprError> {
        let Kind::Struct(c) = self.kind(v.ty)? else {
            return Err(ExprError {
                column: col,
                what: format!("Attempt to extract a component of a value that is not a structure (looking for \"{name}\")"),
            });
        };
        let (bit_offset, bit_size, ty) =
            find_member(self.env, &c, name, 0).ok_or_else(|| ExprError {
                column: col,
                what: format!("There is no member named {name}."),
            })?;
        let vty = VType {
            base: ty,
            pointers: 0,
        };
        let byte = bit_offset / 8;
        match (bit_size, v.loc) {
            (None, Loc::Mem(addr)) => Ok(Val {
                ty: vty,
                loc: Loc::Mem(addr.wrapping_add(byte)),
            }),
            (None, Loc::Imm(bytes)) => {
                let size = self.size_of(vty);
                let start = usize::try_from(byte).unwrap_or(usize::MAX);
                let end = usize::try_from(byte.saturating_add(size)).unwrap_or(usize::MAX);
                let part = bytes.get(start..end).unwrap_or_default();
                Ok(Val {
                    ty: vty,
                    loc: Loc::Imm(part.to_vec()),
                })
            }
            (Some(width), loc) => {
                let size = self.size_of(vty).clamp(1, 8);
                let storage = match loc {
                    Loc::Mem(addr) => {
                        let holder = Val {
                            ty: vty,
                            loc: Loc::Mem(addr.wrapping_add(byte)),
                        };
                        self.bytes(&holder, col)?
                    }
                    Loc::Imm(bytes) => bytes
                        .get(usize::try_from(byte).unwrap_or(usize::MAX)..)
                        .unwrap_or_default()
                        .iter()
                        .copied()
                        .take(size as usize)
                        .collect(),
                };
                let signed = matches!(self.kind(vty)?, Kind::Int { signed: true, .. });
                let raw = le(&storage, false) >> (bit_offset % 8);
                // A hostile bitfield width is bounded to the 64 bits storage can hold.
                let width = width.clamp(1, 64);
                let mask = (1i128 << width) - 1;
                let mut value = raw & mask;
                if signed && value & (1i128 << (width - 1)) != 0 {
                    value -= 1i128 << width;
                }
                let bytes = value.to_le_bytes();
                Ok(Val {
                    ty: vty,
                    loc: Loc::Imm(bytes.get(..size as usize).unwrap_or_default().to_vec()),
                })
            }
        }
    }

    fn cast(&self, spec: TypeSpec, v: Val, col: usize) -> Result<Val, ExprError> {
        let to = VType {
            base: spec.ty,
            pointers: spec.pointers,
        };
        match self.kind(to)? {
            Kind::Pointer(_) | Kind::Int { .. } => {
                let value = match self.kind(v.ty)? {
                    Kind::Array(_) => match v.loc {
                        Loc::Mem(a) => i128::from(a),
                        Loc::Imm(_) => self.scalar(&v, col)?,
                    },
                    _ => self.scalar(&v, col)?,
                };
                let size = self.size_of(to).clamp(1, 16);
                let bytes = value.to_le_bytes();
                Ok(Val {
                    ty: to,
                    loc: Loc::Imm(bytes.get(..size as usize).unwrap_or_default().to_vec()),
                })
            }
            _ => match v.loc {
                // `(struct x)y`: gdb reinterprets an object in memory.
                Loc::Mem(addr) => Ok(Val {
                    ty: to,
                    loc: Loc::Mem(addr),
                }),
                Loc::Imm(_) => Err(ExprError {
                    column: col,
                    what: "Invalid cast".into(),
                }),
            },
        }
    }
}

enum Kind {
    Pointer(VType),
    Array(VType),
    Int { signed: bool, size: u64 },
    Struct(Composite),
    Other,
}

/// A member by name, searched through anonymous members: (bit offset, bit size, type).
pub(crate) fn find_member(
    env: &Env<'_>,
    c: &Composite,
    name: &str,
    depth: usize,
) -> Option<(u64, Option<u64>, TypeRef)> {
    if depth > 8 {
        return None;
    }
    for m in &c.members {
        if m.name.as_deref() == Some(name) {
            return Some((m.bit_offset, m.bit_size, m.ty));
        }
    }
    for m in &c.members {
        if m.name.is_none() {
            if let Ok((_, CType::Struct(inner))) = env.strip(m.ty) {
                if let Some((bit, size, ty)) = find_member(env, &inner, name, depth + 1) {
                    return Some((bit.saturating_add(m.bit_offset), size, ty));
                }
            }
        }
    }
    None
}

fn le(bytes: &[u8], signed: bool) -> i128 {
    let mut raw = [0u8; 16];
    let n = bytes.len().min(16);
    if let (Some(d), Some(s)) = (raw.get_mut(..n), bytes.get(..n)) {
        d.copy_from_slice(s);
    }
    let v = i128::from_le_bytes(raw);
    if signed && n > 0 && n < 16 {
        let shift = 128 - 8 * n as u32;
        (v << shift) >> shift
    } else {
        v
    }
}

fn promoted(size: u64, signed: bool) -> &'static str {
    match (size > 4, signed || size < 4) {
        (false, true) => "int",
        (false, false) => "unsigned int",
        (true, true) => "long",
        (true, false) => "unsigned long",
    }
}

fn rank(ty: &str) -> u8 {
    match ty {
        "int" => 0,
        "unsigned int" => 1,
        "long" => 2,
        _ => 3,
    }
}

fn common_type<'t>(a: &'t str, b: &'t str) -> &'t str {
    if rank(a) >= rank(b) {
        a
    } else {
        b
    }
}

fn wrap_to(value: i128, ty: &str) -> i128 {
    match ty {
        "int" => i128::from(value as i32),
        "unsigned int" => i128::from(value as u32),
        "long" => i128::from(value as i64),
        _ => i128::from(value as u64),
    }
}

fn literal_type(value: u128, hex: bool) -> &'static str {
    if value <= i32::MAX as u128 {
        "int"
    } else if hex && value <= u128::from(u32::MAX) {
        "unsigned int"
    } else if value <= i64::MAX as u128 {
        "long"
    } else {
        "unsigned long"
    }
}

fn normalize_base(words: &[String]) -> String {
    let joined = words.join(" ");
    match joined.as_str() {
        "unsigned" => "unsigned int".into(),
        "signed" | "signed int" => "int".into(),
        "long int" | "signed long" => "long".into(),
        "unsigned long int" => "unsigned long".into(),
        "long long int" => "long long".into(),
        "short" | "short int" => "short".into(),
        "unsigned short int" => "unsigned short".into(),
        _ => joined,
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Num { value, .. } => format!("number {value}"),
        Tok::Ident(w) => format!("'{w}'"),
        Tok::Punct(p) => format!("'{p}'"),
        Tok::End => "end of expression".into(),
    }
}

/// The value of `v` as a tree to print.
pub(crate) fn materialize(env: &Env<'_>, v: &Val) -> Result<(TypedValue, Blob), String> {
    let mut reader = Reader { env, nodes: 0 };
    if v.ty.pointers > 0 {
        let bytes = match &v.loc {
            Loc::Imm(b) => b.clone(),
            Loc::Mem(addr) => Blob::read(dump(env)?, *addr, 8)?.data,
        };
        let addr = u64::try_from(le(&bytes, false) & i128::from(u64::MAX)).unwrap_or(0);
        let node = if v.ty.pointers == 1 {
            reader.pointer(v.ty.base, addr)?
        } else {
            crate::typed::Node::Pointer {
                addr,
                symbol: env.symbolize(addr),
                string: None,
            }
        };
        let ty = vtype_name(env, v.ty)?;
        return Ok((
            TypedValue {
                name: None,
                ty,
                node,
            },
            Blob::value(bytes),
        ));
    }
    let blob = match &v.loc {
        Loc::Imm(b) => Blob::value(b.clone()),
        Loc::Mem(addr) => {
            let size = env.sizeof(v.ty.base)?;
            Blob::read(dump(env)?, *addr, size)?
        }
    };
    let value = reader.value(v.ty.base, &blob, 0, None, 0)?;
    Ok((value, blob))
}

pub(crate) fn vtype_name(env: &Env<'_>, ty: VType) -> Result<String, String> {
    if ty.pointers == 0 {
        return crate::typed::type_name(env, ty.base);
    }
    let mut inner = "*".repeat(ty.pointers);
    let (_, node) = env.strip(ty.base)?;
    if matches!(node, CType::Function { .. } | CType::Array { .. }) {
        inner = format!("({inner})");
    }
    crate::typed::declaration(env, ty.base, &inner)
}

/// The dump behind `env` (none in tests of types alone).
fn dump<'a>(env: &Env<'a>) -> Result<&'a kdive_kernel::Kernel, String> {
    env.kernel.ok_or_else(|| "no dump to read".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::typed::tests::fixture;
    use crate::typed::Style;

    fn eval(text: &str) -> Result<String, ExprError> {
        let types = fixture();
        let env = Env {
            kernel: None,
            types: &types,
            modules: None,
        };
        let v = Eval::new(&env, text)?.run()?;
        let (value, _) = materialize(&env, &v).map_err(|what| ExprError { column: 0, what })?;
        Ok(value.render_top(Style::default()))
    }

    fn error(text: &str) -> String {
        eval(text).expect_err("an error").to_string()
    }

    #[test]
    fn arithmetic_as_c() {
        assert_eq!(eval("1+2*3").unwrap(), "7");
        assert_eq!(eval("(10 - 4) / 3").unwrap(), "2");
        assert_eq!(eval("-5 % 3").unwrap(), "-2");
        assert_eq!(eval("7 > 3").unwrap(), "1");
        assert_eq!(eval("!0 == 1").unwrap(), "1");
        assert_eq!(eval("~0").unwrap(), "-1");
        assert_eq!(eval("0x10 + 1").unwrap(), "17");
        assert_eq!(eval("sizeof(struct list_head)").unwrap(), "16");
        assert_eq!(eval("sizeof(struct task *)").unwrap(), "8");
        assert_eq!(eval("(char)65").unwrap(), "65 'A'");
        assert_eq!(eval("(unsigned int)-1").unwrap(), "4294967295");
        assert_eq!(eval("(pid_t)7").unwrap(), "7");
        assert_eq!(
            eval("(struct task *)0xffff888000001000").unwrap(),
            "(struct task *) 0xffff888000001000"
        );
        assert_eq!(
            eval("(struct list_head *)0x1000 + 2").unwrap(),
            "(struct list_head *) 0x1020"
        );
        assert_eq!(
            eval("&((struct task *)0x1000)->tasks").unwrap(),
            "(struct list_head *) 0x1018"
        );
        assert_eq!(
            eval("&((struct task *)0x1000)->a").unwrap(),
            "(int *) 0x1030"
        );
        assert_eq!(eval("IDLE + GONE").unwrap(), "5");
        assert_eq!(eval("6 & 3 | 8").unwrap(), "10");
        assert_eq!(eval("1 << 4 >> 2").unwrap(), "4");
        assert_eq!(eval("5 ^ 1").unwrap(), "4");
        assert_eq!(eval("1 && 0 || 2").unwrap(), "1");
        assert_eq!(eval("1 + 2 == 3 && 4 > 3").unwrap(), "1");
        assert_eq!(eval("(unsigned long)1 << 40").unwrap(), "1099511627776");
    }

    #[test]
    fn errors_name_the_column() {
        assert_eq!(error("(struct task *"), "expected ')' at column 15");
        assert_eq!(
            error("1 +"),
            "expected an expression, not end of expression at column 4"
        );
        assert_eq!(error("2 @ 3"), "unexpected character '@' at column 3");
        assert_eq!(error("1 / 0"), "Division by zero at column 5");
        assert_eq!(error("(1 + 2"), "expected ')' at column 7");
        assert_eq!(error("1 2"), "unexpected number 2 at column 3");
        assert_eq!(
            error("no_such_thing"),
            "No symbol \"no_such_thing\" in current context at column 1"
        );
        assert_eq!(
            error("((struct task *)0)->nope"),
            "There is no member named nope. at column 19"
        );
        assert_eq!(
            error("(struct nope *)0"),
            "no type named \"struct nope\" at column 2"
        );
        assert!(error("0x").contains("invalid number"));
        assert!(error("1.x").contains("column"));
        // Memory is only read from a dump.
        assert!(error("*(int *)0x1000").contains("no dump"));
    }

    #[test]
    fn deep_or_long_expressions_are_refused() {
        let deep = format!("{}1{}", "(".repeat(5000), ")".repeat(5000));
        assert!(error(&deep).contains("too"));
        let negations = format!("{}1", "-".repeat(1000));
        assert!(eval(&negations).is_err());
    }
}
