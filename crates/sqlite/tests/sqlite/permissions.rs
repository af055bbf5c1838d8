//! The database file and SQLite's `-wal` and `-shm` files are created readable and
//! writable by their owner only: the file is the whole store, every household's.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn the_database_and_its_wal_and_shm_files_are_created_0600() {
    let path = crate::fresh_file();
    let dir = path.parent().unwrap();
    // Control: a file created the ordinary way here is readable by others (the
    // usual umask 022), so the assertions below can fail.
    let control = dir.join("control");
    std::fs::write(&control, b"x").unwrap();
    assert_ne!(
        mode(&control) & 0o077,
        0,
        "this process's umask already hides files from others: the test proves nothing"
    );

    let (store, _feed) = hearth_sqlite::SqliteEventStore::open(&path).unwrap();
    // Open in WAL mode and migrated: the log and the shared-memory index exist.
    for file in [
        path.clone(),
        dir.join("hearth.db-wal"),
        dir.join("hearth.db-shm"),
    ] {
        assert_eq!(format!("{:o}", mode(&file)), "600", "{}", file.display());
    }
    drop(store);
}
