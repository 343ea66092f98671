//! A small BER-TLV reader for EMV data (ISO 8583 field 55), as EMV Book 3 Annex B encodes it:
//! tags of one to three bytes (a first byte whose low five bits are all ones announces more
//! tag bytes, each with bit 8 set while another follows), definite lengths in short form
//! (`00`..`7F`) or long form (`81 xx`, `82 xx xx`, `83 xx xx xx`), constructed objects (bit 6 of
//! the first tag byte) holding further TLVs, and `00` padding bytes between objects.
//!
//! Parsing is strict, because a malformed field 55 is refused ("30"): indefinite lengths, a
//! length running past the data, a truncated tag and the same tag twice at one level are errors.

use std::fmt;

/// One data object: its tag as written (e.g. `0x9F26`) and its value bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The tag bytes as a number, e.g. `0x9F02` or `0x95`.
    pub tag: u32,
    /// The value bytes.
    pub value: &'a [u8],
    /// The objects inside a constructed object; empty for primitive ones.
    pub children: Vec<Tlv<'a>>,
}

/// Why bytes are not well-formed BER-TLV.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlvError {
    /// No data objects at all.
    #[error("no data objects")]
    Empty,
    /// The data ends inside a tag.
    #[error("truncated tag at byte {0}")]
    TruncatedTag(usize),
    /// A tag of more than three bytes.
    #[error("tag longer than 3 bytes at byte {0}")]
    TagTooLong(usize),
    /// The data ends inside a length.
    #[error("truncated length of tag {} at byte {offset}", tag_name(*tag))]
    TruncatedLength {
        /// The tag whose length is cut off.
        tag: u32,
        /// Where the length starts.
        offset: usize,
    },
    /// `80` (indefinite) or a long form of more than three bytes.
    #[error("unsupported length form {byte:#04x} for tag {}", tag_name(*tag))]
    UnsupportedLength {
        /// The tag.
        tag: u32,
        /// The first length byte.
        byte: u8,
    },
    /// The value is longer than the data that is left.
    #[error("tag {} says {length} bytes but only {left} remain", tag_name(*tag))]
    ValueOverrun {
        /// The tag.
        tag: u32,
        /// Its declared length.
        length: usize,
        /// Bytes left in the data.
        left: usize,
    },
    /// The same tag appears twice at one level.
    #[error("tag {} appears more than once", tag_name(*.0))]
    DuplicateTag(u32),
}

/// The tag as upper-case hex, e.g. "9F26".
pub fn tag_name(tag: u32) -> String {
    match tag {
        0..=0xFF => format!("{tag:02X}"),
        0x100..=0xFFFF => format!("{tag:04X}"),
        _ => format!("{tag:06X}"),
    }
}

/// Parses `data` into its top-level objects (constructed objects parsed recursively).
pub fn parse(data: &[u8]) -> Result<Vec<Tlv<'_>>, TlvError> {
    let objects = parse_level(data, 0)?;
    if objects.is_empty() {
        return Err(TlvError::Empty);
    }
    Ok(objects)
}

/// Finds `tag` among `objects` or inside their constructed objects (depth first).
pub fn find<'t, 'a>(objects: &'t [Tlv<'a>], tag: u32) -> Option<&'t Tlv<'a>> {
    objects.iter().find_map(|object| {
        if object.tag == tag {
            Some(object)
        } else {
            find(&object.children, tag)
        }
    })
}

fn parse_level(data: &[u8], base: usize) -> Result<Vec<Tlv<'_>>, TlvError> {
    let mut objects: Vec<Tlv<'_>> = Vec::new();
    let mut at = 0;
    while at < data.len() {
        if data[at] == 0x00 {
            at += 1;
            continue;
        }
        let (tag, constructed, after_tag) = read_tag(data, at, base)?;
        let (length, after_length) = read_length(data, after_tag, tag, base)?;
        let left = data.len() - after_length;
        if length > left {
            return Err(TlvError::ValueOverrun { tag, length, left });
        }
        let value = &data[after_length..after_length + length];
        if objects.iter().any(|o| o.tag == tag) {
            return Err(TlvError::DuplicateTag(tag));
        }
        let children = if constructed {
            parse_level(value, base + after_length)?
        } else {
            Vec::new()
        };
        objects.push(Tlv {
            tag,
            value,
            children,
        });
        at = after_length + length;
    }
    Ok(objects)
}

/// The tag starting at `at`: its number, whether it is constructed, and the next offset.
fn read_tag(data: &[u8], at: usize, base: usize) -> Result<(u32, bool, usize), TlvError> {
    let first = data[at];
    let constructed = first & 0x20 != 0;
    let mut tag = u32::from(first);
    let mut next = at + 1;
    if first & 0x1F == 0x1F {
        loop {
            let byte = *data.get(next).ok_or(TlvError::TruncatedTag(base + at))?;
            if next - at >= 3 {
                return Err(TlvError::TagTooLong(base + at));
            }
            tag = (tag << 8) | u32::from(byte);
            next += 1;
            if byte & 0x80 == 0 {
                break;
            }
        }
    }
    Ok((tag, constructed, next))
}

/// The definite length starting at `at` and the offset of the value.
fn read_length(data: &[u8], at: usize, tag: u32, base: usize) -> Result<(usize, usize), TlvError> {
    let truncated = TlvError::TruncatedLength {
        tag,
        offset: base + at,
    };
    let first = *data.get(at).ok_or_else(|| truncated.clone())?;
    if first < 0x80 {
        return Ok((usize::from(first), at + 1));
    }
    let count = usize::from(first & 0x7F);
    if count == 0 || count > 3 {
        return Err(TlvError::UnsupportedLength { tag, byte: first });
    }
    let bytes = data.get(at + 1..at + 1 + count).ok_or(truncated)?;
    let length = bytes
        .iter()
        .fold(0usize, |sum, &b| (sum << 8) | usize::from(b));
    Ok((length, at + 1 + count))
}

impl fmt::Display for Tlv<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} bytes)", tag_name(self.tag), self.value.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_and_two_byte_tags() {
        let data = [0x9F, 0x27, 0x01, 0x80, 0x95, 0x05, 1, 2, 3, 4, 5];
        let objects = parse(&data).unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!((objects[0].tag, objects[0].value), (0x9F27, &[0x80][..]));
        assert_eq!(objects[1].tag, 0x95);
        assert_eq!(objects[1].value, &[1, 2, 3, 4, 5]);
        assert_eq!(tag_name(objects[0].tag), "9F27");
        assert_eq!(tag_name(objects[1].tag), "95");
    }

    #[test]
    fn reads_long_form_lengths_81_and_82() {
        let mut data = vec![0x9F, 0x10, 0x81, 0x90];
        data.extend([0xAB; 0x90]);
        data.extend([0x5F, 0x2A, 0x82, 0x00, 0x02, 0x01, 0x56]);
        let objects = parse(&data).unwrap();
        assert_eq!(objects[0].value.len(), 0x90);
        assert_eq!(
            (objects[1].tag, objects[1].value),
            (0x5F2A, &[0x01, 0x56][..])
        );

        let mut long = vec![0x71, 0x82, 0x01, 0x00];
        long.extend([0x86, 0x81, 0xFD]);
        long.extend([0x11; 0xFD]);
        let objects = parse(&long).unwrap();
        assert_eq!(objects[0].value.len(), 256);
        assert_eq!(objects[0].children.len(), 1);
        assert_eq!(objects[0].children[0].value.len(), 0xFD);
    }

    #[test]
    fn finds_tags_inside_constructed_templates() {
        // 72 (issuer script template 2) holding 9F18 (script id) and 86 (command).
        let data = [
            0x91, 0x02, 0xAA, 0xBB, 0x72, 0x0A, 0x9F, 0x18, 0x02, 0x01, 0x02, 0x86, 0x03, 0x84,
            0x24, 0x00,
        ];
        let objects = parse(&data).unwrap();
        assert_eq!(find(&objects, 0x9F18).unwrap().value, &[0x01, 0x02]);
        assert_eq!(find(&objects, 0x86).unwrap().value, &[0x84, 0x24, 0x00]);
        assert!(find(&objects, 0x9F26).is_none());
    }

    #[test]
    fn skips_zero_padding_between_objects() {
        let data = [0x00, 0x9C, 0x01, 0x00, 0x00, 0x00, 0x82, 0x02, 0x7C, 0x00];
        let objects = parse(&data).unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0].value, &[0x00]);
    }

    #[test]
    fn refuses_malformed_data() {
        assert_eq!(parse(&[]), Err(TlvError::Empty));
        assert_eq!(parse(&[0x00, 0x00]), Err(TlvError::Empty));
        assert_eq!(parse(&[0x9F]), Err(TlvError::TruncatedTag(0)));
        assert_eq!(
            parse(&[0x9F, 0x81, 0x82, 0x83, 0x01, 0x00]),
            Err(TlvError::TagTooLong(0))
        );
        assert_eq!(
            parse(&[0x95]),
            Err(TlvError::TruncatedLength {
                tag: 0x95,
                offset: 1
            })
        );
        assert_eq!(
            parse(&[0x95, 0x81]),
            Err(TlvError::TruncatedLength {
                tag: 0x95,
                offset: 1
            })
        );
        assert_eq!(
            parse(&[0x95, 0x80, 0x00, 0x00]),
            Err(TlvError::UnsupportedLength {
                tag: 0x95,
                byte: 0x80
            })
        );
        assert_eq!(
            parse(&[0x95, 0x84, 0, 0, 0, 1, 0]),
            Err(TlvError::UnsupportedLength {
                tag: 0x95,
                byte: 0x84
            })
        );
        let overrun = parse(&[0x9F, 0x26, 0x08, 1, 2, 3]).unwrap_err();
        assert_eq!(
            overrun,
            TlvError::ValueOverrun {
                tag: 0x9F26,
                length: 8,
                left: 3
            }
        );
        assert_eq!(
            overrun.to_string(),
            "tag 9F26 says 8 bytes but only 3 remain"
        );
        assert_eq!(
            parse(&[0x9C, 0x01, 0x00, 0x9C, 0x01, 0x00]),
            Err(TlvError::DuplicateTag(0x9C))
        );
    }

    #[test]
    fn errors_inside_templates_are_reported_with_their_offset() {
        // 70 template whose inner object is cut off.
        let data = [0x70, 0x03, 0x9F, 0x26, 0x08];
        assert_eq!(
            parse(&data),
            Err(TlvError::ValueOverrun {
                tag: 0x9F26,
                length: 8,
                left: 0
            })
        );
        assert_eq!(parse(&[0x70, 0x01, 0x9F]), Err(TlvError::TruncatedTag(2)));
    }
}
