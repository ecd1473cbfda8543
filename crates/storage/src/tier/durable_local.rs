//! The `file://` bucket made durable: object_store's `LocalFileSystem` writes objects with
//! a rename and never fsyncs, so after a power loss a manifest the metadata store already
//! points at can be empty or missing while the local segments it covers were deleted. This
//! wrapper returns from a put, a completed multipart upload, a copy or a delete only after
//! the object's bytes and every directory entry from the object up to the bucket root are
//! durable, as an S3 PUT is once it returns. A single PUT writes through the broker's disk
//! (so the test-only tracking disk sees it); multipart uploads, copies and reads go through
//! `LocalFileSystem`.

use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
};

use shale_core::disk::{OpenMode, SharedDisk};

/// A `LocalFileSystem` whose writes are durable when they return.
#[derive(Debug, Clone)]
pub struct DurableLocal {
    inner: Arc<LocalFileSystem>,
    root: PathBuf,
    disk: SharedDisk,
}

impl DurableLocal {
    /// A durable store rooted at `root` (which must exist), fsyncing through `disk`.
    pub fn new(root: &FsPath, disk: SharedDisk) -> Result<Self> {
        let inner = Arc::new(LocalFileSystem::new_with_prefix(root)?);
        Ok(DurableLocal { inner, root: root.to_path_buf(), disk })
    }

    fn file(&self, location: &Path) -> Result<PathBuf> {
        self.inner.path_to_filesystem(location)
    }

    /// Makes `file` (when given) and the directory entries from `dir` up to the root durable.
    async fn sync(&self, file: Option<PathBuf>, dir: PathBuf) -> Result<()> {
        let disk = self.disk.clone();
        let root = self.root.clone();
        let result = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if let Some(file) = &file {
                disk.open(file, OpenMode::Read)?.sync_all()?;
            }
            let mut cur = Some(dir.as_path());
            while let Some(d) = cur.filter(|d| d.starts_with(&root)) {
                disk.sync_dir(d)?;
                cur = d.parent();
            }
            Ok(())
        })
        .await
        .map_err(|e| generic(std::io::Error::other(e)))?;
        result.map_err(generic)
    }

    async fn sync_object(&self, location: &Path) -> Result<()> {
        let file = self.file(location)?;
        let dir = file.parent().map(FsPath::to_path_buf).unwrap_or_else(|| self.root.clone());
        self.sync(Some(file), dir).await
    }
}

fn generic(e: std::io::Error) -> object_store::Error {
    object_store::Error::Generic { store: "DurableLocal", source: Box::new(e) }
}

impl fmt::Display for DurableLocal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Durable({})", self.inner)
    }
}

/// A multipart upload whose completion is durable.
#[derive(Debug)]
struct DurableUpload {
    inner: Box<dyn MultipartUpload>,
    store: DurableLocal,
    location: Path,
}

#[async_trait]
impl MultipartUpload for DurableUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let result = self.inner.complete().await?;
        self.store.sync_object(&self.location).await?;
        Ok(result)
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

#[async_trait]
impl ObjectStore for DurableLocal {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        if matches!(opts.mode, PutMode::Update(_)) {
            // LocalFileSystem refuses it too; let it say so.
            return self.inner.put_opts(location, payload, opts).await;
        }
        // Through the disk, so a test disk sees every byte: stage, fsync, rename (a create
        // must not replace), then the directory entries up to the root.
        let file = self.file(location)?;
        let dir = file.parent().map(FsPath::to_path_buf).unwrap_or_else(|| self.root.clone());
        let (disk, create) = (self.disk.clone(), matches!(opts.mode, PutMode::Create));
        let written = file.clone();
        let staged = tokio::task::spawn_blocking(move || -> Result<()> {
            let io = |e: std::io::Error| generic(e);
            disk.create_dir_all(written.parent().unwrap_or(&written)).map_err(io)?;
            if create && disk.metadata(&written).is_ok() {
                return Err(object_store::Error::AlreadyExists {
                    path: written.display().to_string(),
                    source: "the object exists".into(),
                });
            }
            // `#digits` marks a staged upload: LocalFileSystem never lists it.
            let mut name = written.clone().into_os_string();
            name.push(format!("#{}", rand::random::<u64>()));
            let staging = PathBuf::from(name);
            let f = disk.open(&staging, OpenMode::CreateTruncate).map_err(io)?;
            let mut pos = 0u64;
            for chunk in payload.iter() {
                f.write_all_at(chunk, pos).map_err(io)?;
                pos += chunk.len() as u64;
            }
            f.sync_all().map_err(io)?;
            drop(f);
            if create && disk.metadata(&written).is_ok() {
                let _ = disk.remove_file(&staging);
                return Err(object_store::Error::AlreadyExists {
                    path: written.display().to_string(),
                    source: "the object exists".into(),
                });
            }
            disk.rename(&staging, &written).map_err(io)
        })
        .await
        .map_err(|e| generic(std::io::Error::other(e)))?;
        staged?;
        self.sync(None, dir).await?;
        Ok(PutResult { e_tag: None, version: None, extensions: Default::default() })
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(DurableUpload { inner, store: self.clone(), location: location.clone() }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let store = self.clone();
        self.inner
            .delete_stream(locations)
            .then(move |deleted| {
                let store = store.clone();
                async move {
                    let location = deleted?;
                    let file = store.file(&location)?;
                    if let Some(dir) = file.parent() {
                        store.sync(None, dir.to_path_buf()).await?;
                    }
                    Ok(location)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await?;
        self.sync_object(to).await
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::Mutex;

    use object_store::ObjectStoreExt;

    use super::*;
    use shale_core::disk::{Disk, FileHandle, FileMeta, RealDisk};

    /// The real disk, noting every fsync of a file or directory.
    #[derive(Debug, Default)]
    struct Recording {
        synced: Mutex<Vec<PathBuf>>,
    }

    #[derive(Debug)]
    struct RecordingFile {
        inner: FileHandle,
        path: PathBuf,
        log: Arc<Recording>,
    }

    impl shale_core::disk::DiskFile for RecordingFile {
        fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
            self.inner.read_at(buf, pos)
        }
        fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
            self.inner.write_all_at(buf, pos)
        }
        fn sync_data(&self) -> io::Result<()> {
            self.sync_all()
        }
        fn sync_all(&self) -> io::Result<()> {
            self.log.synced.lock().unwrap().push(self.path.clone());
            self.inner.sync_all()
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.inner.set_len(len)
        }
        fn size(&self) -> io::Result<u64> {
            self.inner.size()
        }
    }

    #[derive(Debug)]
    struct RecordingDisk(Arc<Recording>);

    impl Disk for RecordingDisk {
        fn open(&self, path: &FsPath, mode: OpenMode) -> io::Result<FileHandle> {
            let inner = RealDisk.open(path, mode)?;
            Ok(Arc::new(RecordingFile { inner, path: path.to_path_buf(), log: self.0.clone() }))
        }
        fn open_direct(&self, path: &FsPath) -> io::Result<FileHandle> {
            let why = format!("{}: writes are recorded, not direct", path.display());
            Err(io::Error::new(io::ErrorKind::Unsupported, why))
        }
        fn create_dir_all(&self, path: &FsPath) -> io::Result<()> {
            RealDisk.create_dir_all(path)
        }
        fn rename(&self, from: &FsPath, to: &FsPath) -> io::Result<()> {
            RealDisk.rename(from, to)
        }
        fn remove_file(&self, path: &FsPath) -> io::Result<()> {
            RealDisk.remove_file(path)
        }
        fn remove_dir_all(&self, path: &FsPath) -> io::Result<()> {
            RealDisk.remove_dir_all(path)
        }
        fn sync_dir(&self, path: &FsPath) -> io::Result<()> {
            self.0.synced.lock().unwrap().push(path.to_path_buf());
            RealDisk.sync_dir(path)
        }
        fn read_dir(&self, path: &FsPath) -> io::Result<Vec<String>> {
            RealDisk.read_dir(path)
        }
        fn metadata(&self, path: &FsPath) -> io::Result<FileMeta> {
            RealDisk.metadata(path)
        }
    }

    fn store() -> (tempfile::TempDir, DurableLocal, Arc<Recording>) {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(Recording::default());
        let store = DurableLocal::new(dir.path(), Arc::new(RecordingDisk(log.clone()))).unwrap();
        (dir, store, log)
    }

    fn take(log: &Recording) -> Vec<PathBuf> {
        std::mem::take(&mut *log.synced.lock().unwrap())
    }

    /// Before: the `file://` bucket was a bare `LocalFileSystem`, which fsyncs nothing, and a
    /// power loss after a manifest PUT could leave the manifest empty or missing.
    #[tokio::test]
    async fn a_put_returns_with_the_object_and_its_directories_durable() {
        let (dir, store, log) = store();
        let root = dir.path();
        let location = Path::from("c/t-1/0/manifest");
        store.put(&location, PutPayload::from_static(b"m")).await.unwrap();
        let synced = take(&log);
        let staged = root.join("c/t-1/0/manifest#").to_string_lossy().to_string();
        assert!(synced[0].to_string_lossy().starts_with(&staged), "staged first: {synced:?}");
        assert_eq!(
            synced[1..],
            [root.join("c/t-1/0"), root.join("c/t-1"), root.join("c"), root.to_path_buf()]
        );
        let e = store
            .put_opts(&location, PutPayload::from_static(b"n"), PutMode::Create.into())
            .await
            .unwrap_err();
        assert!(matches!(e, object_store::Error::AlreadyExists { .. }), "{e}");

        let mut upload = store.put_multipart(&Path::from("c/t-1/0/seg")).await.unwrap();
        upload.put_part(PutPayload::from_static(b"abc")).await.unwrap();
        assert!(take(&log).is_empty(), "nothing is durable before completion");
        upload.complete().await.unwrap();
        assert_eq!(take(&log)[..2], [root.join("c/t-1/0/seg"), root.join("c/t-1/0")]);

        store.delete(&location).await.unwrap();
        assert_eq!(take(&log)[0], root.join("c/t-1/0"), "a delete syncs its directory");
        let got = store.get(&Path::from("c/t-1/0/seg")).await.unwrap().bytes().await.unwrap();
        assert_eq!(&got[..], b"abc");
    }

    #[tokio::test]
    async fn a_put_writes_through_the_disk_so_a_tracking_disk_sees_it() {
        for noop in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let disk = Arc::new(shale_core::disk::TrackingDisk::new(noop));
            let store = DurableLocal::new(dir.path(), disk).unwrap();
            store.put(&Path::from("c/s.log"), PutPayload::from_static(b"segment")).await.unwrap();
            // What a killed process leaves: the object's bytes only if fsync did its job.
            let left = std::fs::read(dir.path().join("c/s.log")).unwrap();
            assert_eq!(left, if noop { &b""[..] } else { &b"segment"[..] }, "fsync noop: {noop}");
        }
    }
}
