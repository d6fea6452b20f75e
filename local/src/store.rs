//! An object store on the filesystem (`DATA_DIR/buckets/<bucket>/<key>`) with the S3
//! semantics the stages rely on: atomic writes (temp file + rename), conditional
//! create, content ETags, and object-created notifications delivered to the configured
//! queue in S3's own notification shape, keys URL-encoded.
//!
//! Files a user drops into a bucket folder are announced by `scan`, as an upload would be.

use crate::db::{now_ms, random_id, Db};
use crate::queue::Queues;
use rusqlite::{params, OptionalExtension};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use telepipe_events::ids::digest_hex;
use telepipe_events::s3::encode_key;
use telepipe_workers::error::{PortError, PortErrorKind};
use telepipe_workers::ports::{ObjectBody, ObjectHead, ObjectStore, PutOptions};

/// Where object-created events of a bucket go, as an S3 notification configuration would say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub bucket: String,
    pub prefix: String,
    pub suffix: String,
    pub queue: String,
}

/// Temp files of in-progress writes start with this and are never objects.
const TEMP_PREFIX: &str = ".telepipe-tmp-";

#[derive(Clone)]
pub struct FsStore {
    root: PathBuf,
    db: Db,
    queues: Queues,
    notifications: Vec<Notification>,
}

fn error(kind: PortErrorKind, operation: &'static str) -> PortError {
    PortError::new(kind, "local-store", operation)
}

fn io_error(operation: &'static str) -> impl Fn(std::io::Error) -> PortError {
    move |err| match err.kind() {
        std::io::ErrorKind::NotFound => error(PortErrorKind::NotFound, operation),
        std::io::ErrorKind::AlreadyExists => error(PortErrorKind::AlreadyExists, operation),
        std::io::ErrorKind::PermissionDenied => error(PortErrorKind::AccessDenied, operation),
        _ => error(PortErrorKind::Unavailable, operation),
    }
}

impl FsStore {
    pub fn new(root: PathBuf, db: Db, queues: Queues, notifications: Vec<Notification>) -> Self {
        Self {
            root,
            db,
            queues,
            notifications,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of an object. Keys S3 would accept but a filesystem cannot hold safely
    /// (`..` or `.` segments, empty segments, NUL) are refused rather than escaped.
    pub fn path(&self, bucket: &str, key: &str) -> Result<PathBuf, PortError> {
        let bucket_ok = !bucket.is_empty()
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && bucket != "."
            && bucket != "..";
        let key_ok = !key.is_empty()
            && !key.contains('\0')
            && key
                .split('/')
                .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
            && !key
                .split('/')
                .any(|segment| segment.starts_with(TEMP_PREFIX));
        if !bucket_ok || !key_ok {
            return Err(error(PortErrorKind::InvalidRequest, "ResolveKey"));
        }
        let path = self.root.join(bucket).join(key);
        debug_assert!(path
            .components()
            .all(|c| !matches!(c, Component::ParentDir)));
        Ok(path)
    }

    fn etag(bytes: &[u8]) -> String {
        format!("\"{}\"", digest_hex(&[bytes], 16))
    }

    /// The same ETag as [`Self::etag`] of the file's bytes, hashed in one streaming pass so
    /// a HEAD of a long recording does not load it into memory.
    fn file_etag(path: &Path) -> std::io::Result<(u64, String)> {
        use sha2::{Digest, Sha256};
        use std::io::Read;
        let mut file = std::fs::File::open(path)?;
        let size = file.metadata()?.len();
        let mut hasher = Sha256::new();
        hasher.update(size.to_be_bytes());
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            match file.read(&mut buffer)? {
                0 => break,
                n => hasher.update(&buffer[..n]),
            }
        }
        let hex: String = hasher
            .finalize()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok((size, format!("\"{hex}\"")))
    }

    fn write_atomically(
        &self,
        path: &Path,
        bytes: &[u8],
        create_only: bool,
    ) -> Result<(), PortError> {
        let dir = path.parent().expect("object paths have a bucket folder");
        std::fs::create_dir_all(dir).map_err(io_error("PutObject"))?;
        let temp = dir.join(format!("{TEMP_PREFIX}{}", random_id()));
        let mut file = std::fs::File::create(&temp).map_err(io_error("PutObject"))?;
        file.write_all(bytes)
            .and_then(|_| file.sync_all())
            .map_err(io_error("PutObject"))?;
        drop(file);
        let placed = if create_only {
            // link() fails if the target exists: an atomic "create if absent".
            std::fs::hard_link(&temp, path).map_err(io_error("PutObject"))
        } else {
            std::fs::rename(&temp, path).map_err(io_error("PutObject"))
        };
        let _ = std::fs::remove_file(&temp);
        placed
    }

    /// Stores an object only if none exists under the key (S3 `If-None-Match: *`).
    pub fn put_if_absent(&self, bucket: &str, key: &str, body: &[u8]) -> Result<(), PortError> {
        let path = self.path(bucket, key)?;
        self.write_atomically(&path, body, true)?;
        self.announce(bucket, key, &path)
    }

    /// Sends an object-created notification for `key` to every matching queue and
    /// records the file as announced.
    fn announce(&self, bucket: &str, key: &str, path: &Path) -> Result<(), PortError> {
        let metadata = std::fs::metadata(path).map_err(io_error("Notify"))?;
        let modified = metadata
            .modified()
            .ok()
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok());
        let modified_ns = modified.map_or(0, |d| d.as_nanos() as i64);
        for notification in self.notifications.iter().filter(|n| {
            n.bucket == bucket
                && key.starts_with(n.prefix.as_str())
                && key.ends_with(n.suffix.as_str())
        }) {
            let body = s3_notification(bucket, key, metadata.len());
            self.queues
                .send(&notification.queue, &body, &BTreeMap::new(), 0)?;
        }
        self.db
            .lock()
            .execute(
                "INSERT INTO announced_objects (bucket, key, size, modified_ns) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (bucket, key) DO UPDATE SET size = ?3, modified_ns = ?4",
                params![bucket, key, metadata.len() as i64, modified_ns],
            )
            .map_err(|_| error(PortErrorKind::Unavailable, "Notify"))?;
        Ok(())
    }

    /// Announces files that appeared or changed in notified buckets since they were last
    /// announced (a user dropping a recording into the folder). Returns how many.
    pub fn scan(&self) -> Result<usize, PortError> {
        let mut announced = 0;
        let buckets: Vec<String> = {
            let mut names: Vec<String> = self
                .notifications
                .iter()
                .map(|n| n.bucket.clone())
                .collect();
            names.dedup();
            names
        };
        for bucket in buckets {
            let bucket_dir = self.root.join(&bucket);
            for (key, path) in object_files(&bucket_dir, &bucket_dir) {
                let Ok(metadata) = std::fs::metadata(&path) else {
                    continue;
                };
                let modified_ns = metadata
                    .modified()
                    .ok()
                    .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos() as i64);
                let known: Option<(i64, i64)> = self
                    .db
                    .lock()
                    .query_row(
                        "SELECT size, modified_ns FROM announced_objects WHERE bucket = ?1 AND key = ?2",
                        params![bucket, key],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(|_| error(PortErrorKind::Unavailable, "Scan"))?;
                if known != Some((metadata.len() as i64, modified_ns)) {
                    self.announce(&bucket, &key, &path)?;
                    announced += 1;
                }
            }
        }
        Ok(announced)
    }
}

/// An S3 event notification body, as S3 sends it to SQS (key URL-encoded).
pub fn s3_notification(bucket: &str, key: &str, size: u64) -> String {
    let time = jiff::Timestamp::now().to_string();
    serde_json::json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "local",
        "eventTime": time,
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "telepipe-local",
            "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": {"key": encode_key(key), "size": size, "sequencer": format!("{:016X}", now_ms())}
        }
    }]})
    .to_string()
}

impl ObjectStore for FsStore {
    async fn head(
        &self,
        bucket: &str,
        key: &str,
        _version_id: Option<&str>,
    ) -> Result<ObjectHead, PortError> {
        let path = self.path(bucket, key)?;
        let (size, etag) = Self::file_etag(&path).map_err(io_error("HeadObject"))?;
        Ok(ObjectHead {
            size,
            etag: Some(etag),
            version_id: None,
        })
    }

    async fn get_prefix(
        &self,
        bucket: &str,
        key: &str,
        _version_id: Option<&str>,
        len: u64,
    ) -> Result<Vec<u8>, PortError> {
        use std::io::Read;
        let path = self.path(bucket, key)?;
        let file = std::fs::File::open(&path).map_err(io_error("GetObject"))?;
        let mut bytes = Vec::new();
        file.take(len)
            .read_to_end(&mut bytes)
            .map_err(io_error("GetObject"))?;
        Ok(bytes)
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<ObjectBody, PortError> {
        let path = self.path(bucket, key)?;
        let bytes = std::fs::read(&path).map_err(io_error("GetObject"))?;
        Ok(ObjectBody {
            etag: Some(Self::etag(&bytes)),
            bytes,
        })
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        _options: &PutOptions,
    ) -> Result<(), PortError> {
        let path = self.path(bucket, key)?;
        self.write_atomically(&path, &body, false)?;
        self.announce(bucket, key, &path)
    }
}

impl telepipe_workers::ports::ObjectListing for FsStore {
    async fn list_keys(
        &self,
        bucket: &str,
        prefix: &str,
        max: usize,
    ) -> Result<Vec<String>, PortError> {
        // Walk only the folder the prefix names (up to its last '/').
        let folder = prefix.rsplit_once('/').map_or("", |(folder, _)| folder);
        let bucket_dir = self.root.join(bucket);
        let start = if folder.is_empty() {
            bucket_dir.clone()
        } else {
            self.path(bucket, folder)?
        };
        let mut keys: Vec<String> = object_files(&bucket_dir, &start)
            .into_iter()
            .map(|(key, _)| key)
            .filter(|key| key.starts_with(prefix))
            .collect();
        // S3 lists in key order; chunk names are times, so this is also time order.
        keys.sort();
        keys.truncate(max);
        Ok(keys)
    }
}

/// The objects (key, file) under `start`, a folder inside `bucket_dir`: regular files only,
/// never the temporary files of writes in progress; unreadable folders are passed over.
fn object_files(bucket_dir: &Path, start: &Path) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    let mut pending = vec![start.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            if file_type.is_dir() {
                pending.push(path);
                continue;
            }
            if !file_type.is_file() || entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
            {
                continue;
            }
            let key = path
                .strip_prefix(bucket_dir)
                .ok()
                .and_then(|relative| relative.to_str())
                .map(|k| k.replace(std::path::MAIN_SEPARATOR, "/"));
            if let Some(key) = key {
                found.push((key, path));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::QueueSpec;
    use telepipe_events::s3::{parse_notification, S3Notification};

    fn store(dir: &Path) -> (FsStore, Queues) {
        let db = Db::in_memory().unwrap();
        let queues = Queues::new(db.clone());
        queues
            .declare(&QueueSpec {
                name: "q".into(),
                visibility_secs: 30,
                max_receives: 5,
                dead_letter_queue: None,
            })
            .unwrap();
        let notifications = vec![Notification {
            bucket: "rec".into(),
            prefix: "recordings/".into(),
            suffix: String::new(),
            queue: "q".into(),
        }];
        (
            FsStore::new(dir.to_path_buf(), db, queues.clone(), notifications),
            queues,
        )
    }

    #[tokio::test]
    async fn the_filesystem_object_store_conforms() {
        let dir = temp_dir("conformance");
        let (store, _) = store(&dir);
        telepipe_workers::conformance::object_store(&store, "results", "clinical/").await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("telepipe-store-{name}-{}", random_id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn put_notifies_with_an_encoded_key_that_decodes_back() {
        let dir = temp_dir("put");
        let (store, queues) = store(&dir);
        let key = "recordings/s 1/visit+1 é.wav";
        store
            .put("rec", key, b"abc".to_vec(), &PutOptions::default())
            .await
            .unwrap();
        let message = queues.receive("q", 1).unwrap().remove(0);
        assert!(
            message
                .body
                .contains("recordings%2Fs+1%2Fvisit%2B1+%C3%A9.wav"),
            "{}",
            message.body
        );
        let S3Notification::Records(records) = parse_notification(&message.body).unwrap() else {
            panic!()
        };
        assert_eq!(records[0].key.as_deref(), Ok(key));
        assert_eq!(store.get("rec", key).await.unwrap().bytes, b"abc");
        let head = store.head("rec", key, None).await.unwrap();
        assert_eq!(head.size, 3);
        assert_eq!(
            head.etag,
            store.get("rec", key).await.unwrap().etag,
            "streamed and in-memory ETags agree"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn unsafe_keys_are_refused_and_missing_objects_are_not_found() {
        let dir = temp_dir("keys");
        let (store, _) = store(&dir);
        for key in ["../escape", "a/../b", "a//b", "/abs", "a\0b", ""] {
            let err = store
                .put("rec", key, b"x".to_vec(), &PutOptions::default())
                .await
                .unwrap_err();
            assert_eq!(err.kind, PortErrorKind::InvalidRequest, "{key:?}");
        }
        assert_eq!(
            store.get("rec", "recordings/none").await.unwrap_err().kind,
            PortErrorKind::NotFound
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn conditional_create_refuses_to_overwrite() {
        let dir = temp_dir("create");
        let (store, _) = store(&dir);
        store
            .put_if_absent("rec", "recordings/s/a", b"first")
            .unwrap();
        let err = store
            .put_if_absent("rec", "recordings/s/a", b"second")
            .unwrap_err();
        assert_eq!(err.kind, PortErrorKind::AlreadyExists);
        assert_eq!(
            store.get("rec", "recordings/s/a").await.unwrap().bytes,
            b"first"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn dropped_files_are_announced_once_until_they_change() {
        let dir = temp_dir("scan");
        let (store, queues) = store(&dir);
        std::fs::create_dir_all(dir.join("rec/recordings/s-9")).unwrap();
        std::fs::write(dir.join("rec/recordings/s-9/visit.wav"), b"RIFF").unwrap();
        std::fs::write(dir.join("rec/recordings/s-9/.telepipe-tmp-x"), b"partial").unwrap();
        assert_eq!(store.scan().unwrap(), 1);
        assert_eq!(store.scan().unwrap(), 0);
        std::fs::write(dir.join("rec/recordings/s-9/visit.wav"), b"RIFF-changed").unwrap();
        assert_eq!(store.scan().unwrap(), 1);
        assert_eq!(queues.depth("q").unwrap().visible, 2);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
