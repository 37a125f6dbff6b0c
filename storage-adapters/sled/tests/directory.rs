//! `--store DIR` pointed at a directory that is not Tenure's: refused, and nothing in it
//! changes (no modes rewritten, no database files left among the user's).

#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use tenure_sled::SledStore;

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sled-dir-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_directory_of_other_files_is_refused_and_left_as_it_was() {
    let project = scratch("project");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(project.join("build.sh"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(project.join("build.sh"), PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&project, PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::set_permissions(project.join("src"), PermissionsExt::from_mode(0o755)).unwrap();

    let Err(error) = SledStore::open(&project) else {
        panic!("a directory of other files was opened as a store");
    };
    let text = error.to_string();
    assert!(text.contains("not a Tenure store"), "{text}");
    assert!(text.contains("new or empty directory"), "{text}");
    assert_eq!(mode(&project), 0o755);
    assert_eq!(mode(&project.join("src")), 0o755);
    assert_eq!(mode(&project.join("build.sh")), 0o755);
    let mut names: Vec<String> = std::fs::read_dir(&project)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["build.sh", "src"],
        "no database files among the user's"
    );
}

#[test]
fn a_new_directory_becomes_a_private_marked_store_that_opens_again() {
    let dir = scratch("new");
    drop(SledStore::open(&dir).unwrap());
    assert_eq!(mode(&dir), 0o700);
    assert!(dir.join("TENURE-STORE").is_file());
    // Reopened, it is recognised as a store (sled may hold its lock a moment longer).
    assert!(SledStore::open(&dir).is_ok());
}
