//! Byte sizes as hmrt's users write them (a task's `memory`, a check's thresholds): one grammar
//! for the config and for every guest.

/// A memory size: digits, then optionally a unit: `B`, decimal `KB` `MB` `GB` `TB`, binary
/// `KiB` `MiB` `GiB` `TiB` (units case-insensitive). No unit means bytes.
pub fn parse(text: &str) -> Result<u64, String> {
    let shape = "write it as \"512KiB\", \"64MiB\", \"1GiB\", \"10MB\" or a number of bytes";
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    if digits == 0 {
        return Err(format!("invalid size {text:?}: {shape}"));
    }
    let number: u64 = trimmed[..digits]
        .parse()
        .map_err(|_| format!("size {text:?} is too large"))?;
    let multiplier: u64 = match trimmed[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000_u64.pow(2),
        "gb" => 1000_u64.pow(3),
        "tb" => 1000_u64.pow(4),
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        unit => {
            return Err(format!(
                "invalid size {text:?}: unknown unit {unit:?}; {shape}"
            ));
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse("512KiB"), Ok(512 * 1024));
        assert_eq!(parse("64MiB"), Ok(64 << 20));
        assert_eq!(parse("1GiB"), Ok(1 << 30));
        assert_eq!(parse("10MB"), Ok(10_000_000));
        assert_eq!(parse("10 mb"), Ok(10_000_000));
        assert_eq!(parse("4096"), Ok(4096));
        assert_eq!(parse("7B"), Ok(7));
        for bad in [
            "",
            "MiB",
            "1.5GiB",
            "-1",
            "12 parsecs",
            "99999999999TiB",
            "1e3",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
