//! The tracepoint `format` file: the layout of the raw record a tracepoint writes.
//!
//! ```text
//! name: sched_process_exec
//! ID: 365
//! format:
//!     field:unsigned short common_type;  offset:0;  size:2;  signed:0;
//!     ...
//!     field:__data_loc char[] filename;  offset:8;  size:4;  signed:0;
//! ```
//!
//! Width and sign come from `size:` and `signed:`, never from the C type (all `syscalls:*`
//! fields are 8 bytes whatever their declared type). The kind (integer, bool, pointer, string,
//! array, dynamic array) comes from the declaration text.

use crate::error::{Error, Result};

/// How a field's bytes are to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Integer of `size` bytes (1, 2, 4 or 8), signed per `signed`.
    Int,
    /// `bool` / `_Bool`.
    Bool,
    /// Any pointer (`void *`, `const char *`): an address, never dereferenced.
    Pointer,
    /// `char name[N]`: a string up to the first NUL.
    CharArray,
    /// Fixed array of another element type: `size / element_size` elements.
    Array,
    /// `__data_loc T[] name`: u32 with offset (low 16 bits) and length (high 16 bits) from the
    /// start of the record. `char` elements make a string.
    DataLoc,
    /// `__rel_loc T[] name`: like `DataLoc`, offset relative to the end of the field.
    RelLoc,
    /// `T name[]` with `size:0`: runs to the end of the record.
    Flexible,
}

impl FieldKind {
    /// Stable lower-case name used by the binding (`"int"`, `"data_loc"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::Int => "int",
            FieldKind::Bool => "bool",
            FieldKind::Pointer => "pointer",
            FieldKind::CharArray => "char_array",
            FieldKind::Array => "array",
            FieldKind::DataLoc => "data_loc",
            FieldKind::RelLoc => "rel_loc",
            FieldKind::Flexible => "flexible",
        }
    }
}

/// One `field:` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Field name (`filename`).
    pub name: String,
    /// C type text without the name and array suffix (`__data_loc char[]` gives `char`).
    pub type_name: String,
    /// Byte offset in the raw record.
    pub offset: usize,
    /// Byte size in the record (4 for `__data_loc`/`__rel_loc`, 0 for flexible arrays).
    pub size: usize,
    /// Whether integers are signed.
    pub signed: bool,
    /// How to read it.
    pub kind: FieldKind,
    /// Element size for arrays and dynamic arrays (1 for strings); `size` for scalars.
    pub element_size: usize,
    /// Element type is `char` (so the value is a string).
    pub is_string: bool,
    /// One of the `common_*` header fields every tracepoint has.
    pub common: bool,
}

/// A parsed `format` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    /// Event name (`sched_process_exec`, without the system).
    pub name: String,
    /// The tracepoint id (`config` for `PERF_TYPE_TRACEPOINT`, also `common_type`).
    pub id: u64,
    /// Fields in record order, `common_*` first.
    pub fields: Vec<Field>,
}

impl Format {
    /// Parses the text of a `format` file.
    pub fn parse(text: &str) -> Result<Format> {
        let mut name = None;
        let mut id = None;
        let mut fields = Vec::new();
        let mut in_format = false;
        for (index, raw_line) in text.lines().enumerate() {
            let line_no = index + 1;
            let err = |message: String| Error::InvalidFormat {
                name: name.clone(),
                line: line_no,
                message,
            };
            let line = raw_line.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("name:") {
                name = Some(rest.trim().to_string());
            } else if let Some(rest) = line.strip_prefix("ID:") {
                id = Some(
                    rest.trim()
                        .parse::<u64>()
                        .map_err(|_| err(format!("ID is not a number: {:?}", rest.trim())))?,
                );
            } else if line == "format:" {
                in_format = true;
            } else if line.starts_with("print fmt:") {
                break;
            } else if line.starts_with("field:") {
                if !in_format {
                    return Err(err("field line before 'format:'".into()));
                }
                fields.push(parse_field(line).map_err(err)?);
            } else if in_format {
                return Err(err(format!("unexpected line {line:?}")));
            }
        }
        let name = name.ok_or_else(|| Error::InvalidFormat {
            name: None,
            line: 1,
            message: "missing 'name:' line".into(),
        })?;
        let id = id.ok_or_else(|| Error::InvalidFormat {
            name: Some(name.clone()),
            line: 1,
            message: "missing 'ID:' line".into(),
        })?;
        if !in_format {
            return Err(Error::InvalidFormat {
                name: Some(name),
                line: 1,
                message: "missing 'format:' section".into(),
            });
        }
        let mut seen = std::collections::HashSet::new();
        for f in &fields {
            if !seen.insert(f.name.as_str()) {
                return Err(Error::InvalidFormat {
                    name: Some(name),
                    line: 1,
                    message: format!("field {:?} appears twice", f.name),
                });
            }
        }
        Ok(Format { name, id, fields })
    }

    /// The field called `name`, if any.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// Parses `field:<decl>;\toffset:N;\tsize:N;\tsigned:N;`.
fn parse_field(line: &str) -> std::result::Result<Field, String> {
    let mut decl = None;
    let (mut offset, mut size, mut signed) = (None, None, None);
    for part in line.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once(':')
            .ok_or_else(|| format!("expected key:value, found {part:?}"))?;
        let number = || {
            value
                .trim()
                .parse::<usize>()
                .map_err(|_| format!("{key} is not a number: {value:?}"))
        };
        match key.trim() {
            "field" => decl = Some(value.trim()),
            "offset" => offset = Some(number()?),
            "size" => size = Some(number()?),
            "signed" => signed = Some(number()? != 0),
            _ => {} // newer kernels may add keys
        }
    }
    let decl = decl.ok_or("missing field declaration")?;
    let offset = offset.ok_or("missing offset")?;
    let size = size.ok_or("missing size")?;
    let signed = signed.ok_or("missing signed")?;
    if offset > u16::MAX as usize || size > u16::MAX as usize {
        return Err(format!(
            "offset {offset} or size {size} larger than a record can be"
        ));
    }

    let (dynamic, decl) = if let Some(rest) = decl.strip_prefix("__data_loc ") {
        (Some(FieldKind::DataLoc), rest.trim())
    } else if let Some(rest) = decl.strip_prefix("__rel_loc ") {
        (Some(FieldKind::RelLoc), rest.trim())
    } else {
        (None, decl)
    };

    // Array suffix: on the name (`char comm[16]`, `u8 data[]`) or, for dynamic arrays,
    // on the type (`__data_loc char[] filename`).
    let (type_and_name, array_len) = match decl.strip_suffix(']') {
        Some(head) => {
            let open = head.rfind('[').ok_or("unbalanced ']'")?;
            (&head[..open], Some(head[open + 1..].trim()))
        }
        None => (decl, None),
    };
    let type_and_name = type_and_name.trim();
    // The name is the trailing run of identifier characters (byte offsets stay on char
    // boundaries even when the type holds non-ASCII text).
    let split = type_and_name
        .char_indices()
        .rev()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_'))
        .map(|(i, c)| i + c.len_utf8())
        .ok_or_else(|| format!("no type in declaration {decl:?}"))?;
    let name = type_and_name[split..].to_string();
    let mut type_name = type_and_name[..split].trim().to_string();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("no field name in declaration {decl:?}"));
    }
    if type_name.is_empty() {
        return Err(format!("no type in declaration {decl:?}"));
    }
    if dynamic.is_some() {
        type_name = type_name
            .strip_suffix("[]")
            .map(|t| t.trim().to_string())
            .unwrap_or(type_name);
        if type_name.is_empty() {
            return Err(format!("no element type in declaration {decl:?}"));
        }
    }
    let is_char = is_char_type(&type_name);
    let is_pointer = type_name.ends_with('*');

    let (kind, element_size) = if let Some(kind) = dynamic {
        if size != 4 {
            return Err(format!(
                "{} field {name} must have size 4, has {size}",
                kind.as_str()
            ));
        }
        (kind, element_size_of(&type_name).unwrap_or(1))
    } else if let Some(len) = array_len {
        if size == 0 || len.is_empty() {
            (
                FieldKind::Flexible,
                element_size_of(&type_name).unwrap_or(1),
            )
        } else if is_char && !is_pointer {
            (FieldKind::CharArray, 1)
        } else {
            let elem = match len.parse::<usize>() {
                Ok(n) if n > 0 && size % n == 0 => size / n,
                _ => element_size_of(&type_name).unwrap_or(1),
            };
            if elem == 0 || size % elem != 0 {
                return Err(format!(
                    "array {name}: size {size} is not a multiple of its element size"
                ));
            }
            (FieldKind::Array, elem)
        }
    } else if is_pointer {
        (FieldKind::Pointer, size)
    } else if type_name == "bool" || type_name == "_Bool" {
        (FieldKind::Bool, size)
    } else {
        (FieldKind::Int, size)
    };
    if matches!(kind, FieldKind::Int | FieldKind::Bool | FieldKind::Pointer)
        && !matches!(size, 1 | 2 | 4 | 8)
    {
        return Err(format!(
            "field {name}: a {} cannot be {size} bytes",
            kind.as_str()
        ));
    }
    if matches!(
        kind,
        FieldKind::Array | FieldKind::Flexible | FieldKind::DataLoc | FieldKind::RelLoc
    ) && !matches!(element_size, 1 | 2 | 4 | 8)
    {
        return Err(format!(
            "field {name}: element size {element_size} is not 1, 2, 4 or 8"
        ));
    }

    Ok(Field {
        common: name.starts_with("common_"),
        is_string: is_char
            && !is_pointer
            && matches!(
                kind,
                FieldKind::CharArray | FieldKind::DataLoc | FieldKind::RelLoc | FieldKind::Flexible
            ),
        name,
        type_name,
        offset,
        size,
        signed,
        kind,
        element_size,
    })
}

/// `char` arrays are text; `unsigned char`/`u8` arrays are bytes.
fn is_char_type(t: &str) -> bool {
    matches!(t, "char" | "const char" | "signed char")
}

/// Element size implied by a C type name, when it is a well-known one.
fn element_size_of(t: &str) -> Option<usize> {
    let t = t
        .trim_start_matches("const ")
        .trim_start_matches("volatile ")
        .trim();
    if t.ends_with('*') {
        return Some(std::mem::size_of::<usize>());
    }
    Some(match t {
        "char" | "signed char" | "unsigned char" | "u8" | "s8" | "__u8" | "__s8" | "uint8_t"
        | "int8_t" | "bool" | "_Bool" => 1,
        "short" | "unsigned short" | "u16" | "s16" | "__u16" | "__s16" | "__be16" | "__le16"
        | "uint16_t" | "int16_t" => 2,
        "int" | "unsigned int" | "unsigned" | "u32" | "s32" | "__u32" | "__s32" | "__be32"
        | "__le32" | "uint32_t" | "int32_t" | "pid_t" => 4,
        "long" | "unsigned long" | "long long" | "unsigned long long" | "u64" | "s64" | "__u64"
        | "__s64" | "__be64" | "__le64" | "uint64_t" | "int64_t" | "size_t" | "cpumask_t" => 8,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXEC: &str = include_str!("../../../fixtures/formats/sched_sched_process_exec.format");
    const SWITCH: &str = include_str!("../../../fixtures/formats/sched_sched_switch.format");
    const OPENAT: &str = include_str!("../../../fixtures/formats/syscalls_sys_enter_openat.format");
    const RAW_ENTER: &str = include_str!("../../../fixtures/formats/raw_syscalls_sys_enter.format");

    fn f<'a>(fmt: &'a Format, name: &str) -> &'a Field {
        fmt.field(name).unwrap_or_else(|| panic!("no field {name}"))
    }

    #[test]
    fn exec() {
        let fmt = Format::parse(EXEC).unwrap();
        assert_eq!(fmt.name, "sched_process_exec");
        assert!(fmt.id > 0);
        assert_eq!(fmt.fields.len(), 7);
        let common_pid = f(&fmt, "common_pid");
        assert!(common_pid.common && common_pid.signed);
        assert_eq!(
            (common_pid.offset, common_pid.size, common_pid.kind),
            (4, 4, FieldKind::Int)
        );
        let filename = f(&fmt, "filename");
        assert_eq!(filename.kind, FieldKind::DataLoc);
        assert!(filename.is_string && !filename.common);
        assert_eq!(
            (filename.offset, filename.size, filename.type_name.as_str()),
            (8, 4, "char")
        );
        let pid = f(&fmt, "pid");
        assert_eq!(
            (pid.offset, pid.size, pid.signed, pid.type_name.as_str()),
            (12, 4, true, "pid_t")
        );
    }

    #[test]
    fn sched_switch_char_arrays() {
        let fmt = Format::parse(SWITCH).unwrap();
        let comm = f(&fmt, "prev_comm");
        assert_eq!(
            (comm.kind, comm.offset, comm.size, comm.is_string),
            (FieldKind::CharArray, 8, 16, true)
        );
        let state = f(&fmt, "prev_state");
        assert_eq!(
            (state.kind, state.size, state.signed),
            (FieldKind::Int, 8, true)
        );
        assert_eq!(f(&fmt, "next_pid").offset, 56);
    }

    #[test]
    fn syscall_fields_are_eight_bytes_whatever_the_type() {
        let fmt = Format::parse(OPENAT).unwrap();
        let dfd = f(&fmt, "dfd");
        assert_eq!(
            (dfd.type_name.as_str(), dfd.size, dfd.signed, dfd.kind),
            ("int", 8, false, FieldKind::Int)
        );
        let filename = f(&fmt, "filename");
        assert_eq!(
            (filename.kind, filename.type_name.as_str()),
            (FieldKind::Pointer, "const char *")
        );
        assert!(!filename.is_string);
        assert_eq!(f(&fmt, "__syscall_nr").size, 4);
    }

    #[test]
    fn raw_syscalls_args_array() {
        let fmt = Format::parse(RAW_ENTER).unwrap();
        let args = f(&fmt, "args");
        assert_eq!(
            (args.kind, args.size, args.element_size),
            (FieldKind::Array, 48, 8)
        );
        assert_eq!(f(&fmt, "id").kind, FieldKind::Int);
    }

    #[test]
    fn other_kinds() {
        let text = "name: t\nID: 7\nformat:\n\
            \tfield:bool ok;\toffset:8;\tsize:1;\tsigned:0;\n\
            \tfield:__rel_loc u32[] vals;\toffset:12;\tsize:4;\tsigned:0;\n\
            \tfield:__u8 saddr[sizeof(struct sockaddr_in6)];\toffset:16;\tsize:28;\tsigned:0;\n\
            \tfield:u8 tail[];\toffset:44;\tsize:0;\tsigned:0;\n\
            \tfield:void * ptr;\toffset:48;\tsize:8;\tsigned:0;\n\nprint fmt: \"x\"\n";
        let fmt = Format::parse(text).unwrap();
        assert_eq!(f(&fmt, "ok").kind, FieldKind::Bool);
        let vals = f(&fmt, "vals");
        assert_eq!(
            (vals.kind, vals.element_size, vals.is_string),
            (FieldKind::RelLoc, 4, false)
        );
        let saddr = f(&fmt, "saddr");
        assert_eq!((saddr.kind, saddr.element_size), (FieldKind::Array, 1));
        assert_eq!(f(&fmt, "tail").kind, FieldKind::Flexible);
        assert_eq!(f(&fmt, "ptr").kind, FieldKind::Pointer);
    }

    #[test]
    fn malformed_input_gives_line_and_reason() {
        let cases = [
            ("", "missing 'name:'"),
            ("name: x\nformat:\n", "missing 'ID:'"),
            ("name: x\nID: abc\n", "ID is not a number"),
            ("name: x\nID: 1\n", "missing 'format:'"),
            ("name: x\nID: 1\nformat:\n\tfield:int a;\toffset:0;\tsize:4;\n", "missing signed"),
            ("name: x\nID: 1\nformat:\n\tfield:int a;\toffset:x;\tsize:4;\tsigned:1;\n", "offset is not a number"),
            ("name: x\nID: 1\nformat:\n\tfield:int a;\toffset:0;\tsize:3;\tsigned:1;\n", "cannot be 3 bytes"),
            ("name: x\nID: 1\nformat:\n\tfield:int;\toffset:0;\tsize:4;\tsigned:1;\n", "no type"),
            ("name: x\nID: 1\nformat:\n\tfield:__data_loc char[] s;\toffset:0;\tsize:8;\tsigned:1;\n", "must have size 4"),
            ("name: x\nID: 1\nformat:\n\tfield:int a;\toffset:0;\tsize:4;\tsigned:1;\n\tfield:int a;\toffset:4;\tsize:4;\tsigned:1;\n", "appears twice"),
            ("name: x\nID: 1\nformat:\n\tgarbage\n", "unexpected line"),
        ];
        for (text, want) in cases {
            let err = Format::parse(text).unwrap_err();
            assert_eq!(err.code(), "ERR_INVALID_FORMAT");
            assert!(err.to_string().contains(want), "{text:?}: {err}");
        }
        let err = Format::parse("name: x\nID: 1\nformat:\n\n\tgarbage\n").unwrap_err();
        assert!(err.to_string().contains("of x: line 5"), "{err}");
    }
}
