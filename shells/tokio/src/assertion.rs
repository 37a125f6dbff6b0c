//! Reading the assertion of the jwt-bearer grant where the core says it is
//! ([`tenure_core::Command::ReadAssertion`]): a file the platform rotates, an environment
//! variable, or the output of a program.
//!
//! The core decides when to read (once per grant request, under the store lease); this
//! module only reads, with bounds: a file or a program's output is cut off after
//! [`ASSERTION_SIZE_LIMIT`] bytes and refused, and a program gets [`COMMAND_TIME_LIMIT`] to
//! finish. Errors name the source, never its content: the content is a credential. The core
//! trims and checks the text it is handed.

use std::process::Stdio;

use tenure_core::{AssertionSource, Secret};
use tokio::io::AsyncReadExt;

/// The most bytes an assertion may have. A JWT is a few kilobytes; anything much larger is
/// not one, and is not read into memory.
pub const ASSERTION_SIZE_LIMIT: u64 = 64 * 1024;
/// How long a program that prints the assertion may run.
pub const COMMAND_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(15);

/// Reads the current assertion at `source`.
pub async fn read_assertion(source: &AssertionSource) -> Result<Secret, String> {
    let bytes = match source {
        AssertionSource::File(path) => {
            let file = tokio::fs::File::open(path)
                .await
                .map_err(|e| format!("cannot open {}: {e}", source.describe()))?;
            read_capped(file, source).await?
        }
        AssertionSource::Env(name) => std::env::var(name)
            .map_err(|e| format!("{} is not usable: {e}", source.describe()))?
            .into_bytes(),
        AssertionSource::Command(argv) => run_command(argv, source).await?,
        other => return Err(format!("{} is not supported here", other.describe())),
    };
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("{} does not hold UTF-8 text", source.describe()))?;
    Ok(Secret::new(text))
}

/// Reads at most [`ASSERTION_SIZE_LIMIT`] bytes; more is an error.
async fn read_capped(
    reader: impl tokio::io::AsyncRead + Unpin,
    source: &AssertionSource,
) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    reader
        .take(ASSERTION_SIZE_LIMIT + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| format!("cannot read {}: {e}", source.describe()))?;
    if bytes.len() as u64 > ASSERTION_SIZE_LIMIT {
        return Err(format!(
            "{} holds more than {ASSERTION_SIZE_LIMIT} bytes, too much for a JWT",
            source.describe()
        ));
    }
    Ok(bytes)
}

/// Runs the program without a shell and takes its standard output; it must exit with
/// status 0 within [`COMMAND_TIME_LIMIT`]. Its standard error is discarded: Tenure may run
/// in a server whose error output is logged, and a helper that prints its token there would
/// put a credential in the log. Errors name the program and its exit status only.
async fn run_command(argv: &[String], source: &AssertionSource) -> Result<Vec<u8>, String> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| "the assertion command names no program".to_string())?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", source.describe()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| format!("cannot read the output of {}", source.describe()))?;
    let finished = tokio::time::timeout(COMMAND_TIME_LIMIT, async {
        let bytes = read_capped(stdout, source).await?;
        let status = child
            .wait()
            .await
            .map_err(|e| format!("{} did not finish: {e}", source.describe()))?;
        Ok::<_, String>((bytes, status))
    })
    .await;
    match finished {
        Ok(Ok((bytes, status))) if status.success() => Ok(bytes),
        Ok(Ok((_, status))) => Err(format!("{} failed ({status})", source.describe())),
        Ok(Err(reason)) => Err(reason),
        // Dropping the child kills it (`kill_on_drop`).
        Err(_) => Err(format!(
            "{} did not finish within {} s",
            source.describe(),
            COMMAND_TIME_LIMIT.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(script: &str) -> AssertionSource {
        AssertionSource::Command(vec!["sh".into(), "-c".into(), script.into()])
    }

    #[tokio::test]
    async fn each_source_kind_is_read() {
        let dir = std::env::temp_dir().join(format!("tenure-assertion-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "file-jwt\n").unwrap();
        let file = AssertionSource::File(path.display().to_string());
        assert_eq!(read_assertion(&file).await.unwrap().expose(), "file-jwt\n");
        std::fs::write(&path, vec![b'a'; ASSERTION_SIZE_LIMIT as usize + 1]).unwrap();
        let error = read_assertion(&file).await.unwrap_err();
        assert!(error.contains("more than"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();

        let out = read_assertion(&command("printf command-jwt"))
            .await
            .unwrap();
        assert_eq!(out.expose(), "command-jwt");
        let failed = read_assertion(&command("printf leaked-text; exit 3"))
            .await
            .unwrap_err();
        assert!(failed.contains("failed"), "{failed}");
        assert!(!failed.contains("leaked-text"), "{failed}");

        let unset = AssertionSource::Env("TENURE_TEST_VARIABLE_THAT_IS_NOT_SET".into());
        let error = read_assertion(&unset).await.unwrap_err();
        assert!(
            error.contains("TENURE_TEST_VARIABLE_THAT_IS_NOT_SET"),
            "{error}"
        );
    }
}
