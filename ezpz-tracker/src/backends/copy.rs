//! Copying artifacts (files and folders) into a run directory.
//!
//! The path the user names is followed (a link to a checkpoint copies the checkpoint); inside
//! a copied folder, symbolic links are copied as links (`cp -R` without `-L`), so a link loop
//! copies once and a link to a huge tree costs nothing (on systems without symbolic links they
//! are left out, with one warning). A folder that holds the run directory itself (`.` while
//! the run writes to `./outputs/…`) is copied without it, with one warning: the copy never
//! grows into itself. Sockets, pipes and devices are left out, with one warning (reading a
//! pipe would block the backend forever).

use std::fs::Metadata;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Copies the file or folder `src` into `dest_dir`, keeping its name; nothing inside
/// `run_dir` (the run directory, which holds `dest_dir`) is copied. A `src` inside `run_dir`
/// is already with the run: nothing is copied.
pub(crate) fn copy_artifact(src: &Path, dest_dir: &Path, run_dir: &Path) -> Result<()> {
    let run_dir = std::fs::canonicalize(run_dir).unwrap_or_else(|_| run_dir.to_path_buf());
    if std::fs::canonicalize(src).is_ok_and(|s| s.starts_with(&run_dir)) {
        return Ok(());
    }
    let name = src.file_name().ok_or_else(|| Error::Invalid {
        what: "artifact",
        message: format!("`{}` has no file name", src.display()),
    })?;
    let meta = std::fs::metadata(src).map_err(|e| Error::io("cannot read artifact", src, e))?;
    create_dir(dest_dir)?;
    let mut copy = Copy {
        root: src,
        run_dir,
        left_out: Vec::new(),
    };
    copy.entry(src, &meta, &dest_dir.join(name))?;
    copy.warn();
    Ok(())
}

/// Copies `src` into `dest_dir` like [`copy_artifact`], keeping out `dest_dir` itself (for
/// a backend with no run directory of its own to keep out).
#[cfg(feature = "wandb")]
pub(crate) fn copy_into(src: &Path, dest_dir: &Path) -> Result<()> {
    create_dir(dest_dir)?;
    copy_artifact(src, dest_dir, dest_dir)
}

/// One artifact's copy, and what it left out.
struct Copy<'a> {
    root: &'a Path,
    run_dir: PathBuf,
    left_out: Vec<(PathBuf, &'static str)>,
}

impl Copy<'_> {
    fn entry(&mut self, src: &Path, meta: &Metadata, dest: &Path) -> Result<()> {
        let kind = meta.file_type();
        if kind.is_symlink() {
            return self.link(src, dest);
        }
        if kind.is_file() {
            return std::fs::copy(src, dest)
                .map(|_| ())
                .map_err(|e| Error::io("cannot copy artifact", src, e));
        }
        if !kind.is_dir() {
            self.left_out
                .push((src.to_path_buf(), "not a file, folder or link"));
            return Ok(());
        }
        if std::fs::canonicalize(src).is_ok_and(|s| s == self.run_dir) {
            self.left_out
                .push((src.to_path_buf(), "the run directory itself"));
            return Ok(());
        }
        create_dir(dest)?;
        for entry in std::fs::read_dir(src).map_err(|e| Error::io("cannot read", src, e))? {
            let entry = entry.map_err(|e| Error::io("cannot read", src, e))?;
            let path = entry.path();
            // `symlink_metadata`: a link is seen as a link, not as what it points to.
            let meta = std::fs::symlink_metadata(&path)
                .map_err(|e| Error::io("cannot read artifact", &path, e))?;
            self.entry(&path, &meta, &dest.join(entry.file_name()))?;
        }
        Ok(())
    }

    #[cfg(unix)]
    fn link(&mut self, src: &Path, dest: &Path) -> Result<()> {
        let target = std::fs::read_link(src).map_err(|e| Error::io("cannot read link", src, e))?;
        std::os::unix::fs::symlink(&target, dest)
            .map_err(|e| Error::io("cannot create link", dest, e))
    }

    #[cfg(not(unix))]
    fn link(&mut self, src: &Path, _dest: &Path) -> Result<()> {
        self.left_out.push((src.to_path_buf(), "a symbolic link"));
        Ok(())
    }

    /// One warning for everything this artifact left out.
    fn warn(&self) {
        if self.left_out.is_empty() {
            return;
        }
        let list: Vec<String> = self
            .left_out
            .iter()
            .take(5)
            .map(|(p, why)| format!("`{}` ({why})", p.display()))
            .collect();
        let more = self.left_out.len().saturating_sub(list.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        crate::warn!(
            "ezpz: artifact `{}` copied without {}{more}",
            self.root.display(),
            list.join(", ")
        );
    }
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create directory", dir, e))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.clone());
            if std::fs::symlink_metadata(&path).unwrap().is_dir() {
                out.extend(files_under(&path));
            }
        }
        out
    }

    #[test]
    fn a_link_loop_is_copied_as_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("ckpt");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/w.bin"), b"w").unwrap();
        symlink("..", src.join("sub/up")).unwrap();
        symlink("sub/w.bin", src.join("latest")).unwrap();
        let run = dir.path().join("run");
        copy_artifact(&src, &run.join("artifacts/model"), &run).unwrap();
        let copied = run.join("artifacts/model/ckpt");
        assert_eq!(std::fs::read(copied.join("sub/w.bin")).unwrap(), b"w");
        assert_eq!(
            std::fs::read_link(copied.join("sub/up")).unwrap(),
            Path::new("..")
        );
        assert_eq!(std::fs::read(copied.join("latest")).unwrap(), b"w");
        assert_eq!(files_under(&run).len(), 7, "{:?}", files_under(&run));
    }

    #[test]
    fn a_folder_holding_the_run_directory_is_copied_without_it() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("project");
        std::fs::create_dir_all(project.join("src")).unwrap();
        std::fs::write(project.join("src/main.rs"), b"fn main() {}").unwrap();
        let run = project.join("outputs/p/run");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("metrics.csv"), b"step\n").unwrap();
        copy_artifact(&project, &run.join("artifacts/code"), &run).unwrap();
        let copied = run.join("artifacts/code/project");
        assert!(copied.join("src/main.rs").is_file());
        assert!(copied.join("outputs/p").is_dir());
        assert!(!copied.join("outputs/p/run").exists());
        assert_eq!(files_under(&run).len(), 8, "{:?}", files_under(&run));
    }

    #[test]
    fn a_link_to_the_run_directory_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir_all(&run).unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        symlink(&run, src.join("out")).unwrap();
        copy_artifact(&src, &run.join("artifacts/s"), &run).unwrap();
        assert!(std::fs::symlink_metadata(run.join("artifacts/s/src/out"))
            .unwrap()
            .is_symlink());
    }

    #[test]
    fn a_source_inside_the_run_directory_is_already_there() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("report.md"), b"r").unwrap();
        copy_artifact(
            &dir.path().join("report.md"),
            &dir.path().join("artifacts/r"),
            dir.path(),
        )
        .unwrap();
        assert!(!dir.path().join("artifacts").exists());
    }
}
