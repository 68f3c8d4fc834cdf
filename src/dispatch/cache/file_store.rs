//! The embedded response cache: answers kept in one redb file (`responses.redb` in the
//! `blossom.cache` directory) and reused across queries and processes of one machine,
//! so that a rerun, or a run resumed after a crash, asks nothing twice.
//!
//! ```sql
//! SET blossom.cache = '/data/blossom-cache'; -- default: ~/.cache/blossom-sql
//! SET blossom.cache_ttl = 86400;             -- answers older than a day are asked again
//! SELECT sentiment(text) FROM 'data/reviews.csv'; -- the second run sends no request
//! ```
//!
//! Keys and values are [`super::entry`]'s, as in the Redis store. Answers are written
//! by a background thread in small transactions: an answer waits at most
//! [`FLUSH_EVERY`] before its transaction starts, a transaction holds at most
//! [`FLUSH_BATCH`] answers, and [`ResponseCache::put`] waits while [`FLUSH_BATCH`]
//! answers are not yet committed, so the answers a killed process had received but not
//! written are never more than [`FLUSH_BATCH`].
//!
//! redb locks its file for one process. A second process on the same cache gets
//! [`CacheOpenError::InUse`] and runs uncached (a Redis cache is the one to share); a
//! file that is not a readable redb database is renamed aside
//! (`responses.redb.damaged-<unix time>`) and a new one made.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Condvar, LazyLock, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableDatabase, TableDefinition};

use super::entry::{self, CacheKey, CacheOpenError};
use crate::provider::ChatAnswer;

/// The file in the cache directory.
pub const CACHE_FILE: &str = "responses.redb";

/// Longest time an answer waits before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Answers that make the writer commit without waiting for [`FLUSH_EVERY`], and the most
/// answers stored and not yet committed at any time: a store waits for room beyond it.
pub const FLUSH_BATCH: usize = 64;

/// Memory redb may use for its page cache.
const PAGE_CACHE_BYTES: usize = 64 * 1024 * 1024;

const ANSWERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("answers_v1");

enum Message {
    Put(CacheKey, Arc<Vec<u8>>),
    Flush(SyncSender<()>),
}

type Pending = Mutex<HashMap<CacheKey, Arc<Vec<u8>>>>;

/// The answers sent to the writer and not yet committed, bounded by [`FLUSH_BATCH`].
#[derive(Debug, Default)]
struct Backlog {
    state: Mutex<BacklogState>,
    room: Condvar,
}

#[derive(Debug, Default)]
struct BacklogState {
    uncommitted: usize,
    /// The writer is gone: nothing waits for it any more.
    closed: bool,
    /// The most answers ever uncommitted at once.
    high_water: usize,
}

impl Backlog {
    /// Waits until there is room for one more answer, and takes it; `false` if the
    /// writer is gone.
    fn reserve(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while state.uncommitted >= FLUSH_BATCH && !state.closed {
            state = self.room.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        if state.closed {
            return false;
        }
        state.uncommitted += 1;
        state.high_water = state.high_water.max(state.uncommitted);
        true
    }

    /// `n` answers were committed (or will never be): their room is free again.
    fn release(&self, n: usize) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.uncommitted = state.uncommitted.saturating_sub(n);
        drop(state);
        self.room.notify_all();
    }

    fn close(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        self.room.notify_all();
    }
}

/// Closes the backlog when the writer thread ends, however it ends.
struct CloseOnExit(Arc<Backlog>);

impl Drop for CloseOnExit {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// One open cache file, shared by every session of the process that names it.
pub struct ResponseCache {
    path: PathBuf,
    db: Arc<Database>,
    /// Answers sent to the writer and not yet committed, readable meanwhile.
    pending: Arc<Pending>,
    backlog: Arc<Backlog>,
    sender: Mutex<Option<Sender<Message>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseCache")
            .field("path", &self.path)
            .finish()
    }
}

/// How long opening waits for a handle of this process that is closing the same file.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// How often it looks meanwhile.
const CLOSE_POLL: Duration = Duration::from_millis(10);

/// The caches open in this process, by file; one redb handle per file.
static OPEN: LazyLock<Mutex<HashMap<PathBuf, Weak<ResponseCache>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

impl ResponseCache {
    /// The cache in directory `dir`, opened once per process and shared: made if
    /// missing, set aside and made anew if damaged.
    pub fn shared(dir: &Path) -> Result<Arc<Self>, CacheOpenError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| CacheOpenError::Io(dir.to_path_buf(), e.to_string()))?;
        let path = dir.join(CACHE_FILE);
        let id = dir
            .canonicalize()
            .unwrap_or_else(|_| dir.to_path_buf())
            .join(CACHE_FILE);
        let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
        // A handle of this process whose last user is gone may still be writing its last
        // answers and closing the file (on another thread): wait for it, rather than
        // take the file for another process's.
        let closing_here = open.get(&id).is_some_and(|cache| cache.strong_count() == 0);
        open.retain(|_, cache| cache.strong_count() > 0);
        if let Some(cache) = open.get(&id).and_then(Weak::upgrade) {
            return Ok(cache);
        }
        let mut waited = Duration::ZERO;
        let cache = loop {
            match Self::open(&path) {
                Err(CacheOpenError::InUse(_)) if closing_here && waited < CLOSE_WAIT => {
                    std::thread::sleep(CLOSE_POLL);
                    waited += CLOSE_POLL;
                }
                result => break Arc::new(result?),
            }
        };
        open.insert(id, Arc::downgrade(&cache));
        Ok(cache)
    }

    /// Opens (or makes) the cache file at `path` for this handle alone.
    pub fn open(path: &Path) -> Result<Self, CacheOpenError> {
        let db = match open_db(path) {
            Ok(db) => db,
            Err(OpenFailure::InUse) => return Err(CacheOpenError::InUse(path.to_path_buf())),
            Err(OpenFailure::Io(why)) => {
                return Err(CacheOpenError::Io(path.to_path_buf(), why));
            }
            Err(OpenFailure::Damaged(why)) => {
                let aside = set_aside(path)?;
                tracing::warn!(
                    "the response cache {} is damaged ({why}); it was moved to {} and a new \
                     one started",
                    path.display(),
                    aside.display()
                );
                match open_db(path) {
                    Ok(db) => db,
                    Err(OpenFailure::InUse) => {
                        return Err(CacheOpenError::InUse(path.to_path_buf()));
                    }
                    Err(OpenFailure::Io(why) | OpenFailure::Damaged(why)) => {
                        return Err(CacheOpenError::Io(path.to_path_buf(), why));
                    }
                }
            }
        };
        let db = Arc::new(db);
        let pending: Arc<Pending> = Arc::default();
        let backlog: Arc<Backlog> = Arc::default();
        let (sender, receiver) = mpsc::channel();
        let writer = {
            let db = Arc::clone(&db);
            let pending = Arc::clone(&pending);
            let backlog = Arc::clone(&backlog);
            let file = path.to_path_buf();
            std::thread::Builder::new()
                .name("blossom-cache-writer".to_string())
                .spawn(move || {
                    let _close = CloseOnExit(Arc::clone(&backlog));
                    write_loop(&db, &pending, &backlog, &receiver, &file);
                })
                .map_err(|e| CacheOpenError::Io(path.to_path_buf(), e.to_string()))?
        };
        Ok(Self {
            path: path.to_path_buf(),
            db,
            pending,
            backlog,
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
        })
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored answer to `key`, unless there is none, it is older than `ttl`, or it
    /// cannot be read (a read error is logged and counts as a miss).
    pub fn get(&self, key: &CacheKey, ttl: Option<Duration>) -> Option<ChatAnswer> {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned();
        let bytes = match pending {
            Some(bytes) => bytes.as_ref().clone(),
            None => match self.read(key) {
                Ok(bytes) => bytes?,
                Err(why) => {
                    tracing::warn!(
                        "cannot read the response cache {}: {why}",
                        self.path.display()
                    );
                    return None;
                }
            },
        };
        entry::decode(&bytes, ttl)
    }

    fn read(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, redb::Error> {
        let txn = self.db.begin_read()?;
        let table = match txn.open_table(ANSWERS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(table
            .get(key.as_bytes().as_slice())?
            .map(|v| v.value().to_vec()))
    }

    /// Stores `answer` under `key`; it is readable at once and written within
    /// [`FLUSH_EVERY`]. Waits (briefly: one transaction's commit) while [`FLUSH_BATCH`]
    /// answers are not yet committed, so that a killed process never loses more.
    pub fn put(&self, key: CacheKey, answer: &ChatAnswer) {
        let Some(bytes) = entry::encode(answer) else {
            return;
        };
        let bytes = Arc::new(bytes);
        let sender = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = sender.as_ref() {
            if !self.backlog.reserve() {
                return;
            }
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, Arc::clone(&bytes));
            if sender.send(Message::Put(key, bytes)).is_err() {
                self.pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key);
                self.backlog.release(1);
            }
        }
    }

    /// Waits until every answer stored so far is committed to the file.
    pub fn flush(&self) {
        let (done, wait) = mpsc::sync_channel(1);
        let sent = self
            .sender
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|s| s.send(Message::Flush(done)).is_ok());
        if sent {
            let _ = wait.recv();
        }
    }
}

#[cfg(test)]
impl ResponseCache {
    /// The answers committed to the file (not counting those pending).
    fn committed(&self) -> u64 {
        let Ok(txn) = self.db.begin_read() else {
            return 0;
        };
        match txn.open_table(ANSWERS) {
            Ok(table) => redb::ReadableTableMetadata::len(&table).unwrap_or(0),
            Err(_) => 0,
        }
    }

    /// The most answers ever stored and not yet committed at once.
    fn high_water(&self) -> usize {
        self.backlog
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .high_water
    }
}

impl Drop for ResponseCache {
    /// Writes what is pending, then closes the file.
    fn drop(&mut self) {
        self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = writer.join();
        }
    }
}

enum OpenFailure {
    InUse,
    Damaged(String),
    Io(String),
}

fn open_db(path: &Path) -> Result<Database, OpenFailure> {
    // redb asserts some invariants of its own files in debug builds; a damaged file must
    // never bring the process down, so a panic while opening counts as damage.
    let opened = std::panic::catch_unwind(|| {
        let db = Database::builder()
            .set_cache_size(PAGE_CACHE_BYTES)
            .create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(ANSWERS)?;
        txn.commit()?;
        Ok::<_, redb::Error>(db)
    });
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(error)) => Err(classify(error)),
        Err(_) => Err(OpenFailure::Damaged("redb could not read it".to_string())),
    }
}

fn classify(error: redb::Error) -> OpenFailure {
    match error {
        redb::Error::DatabaseAlreadyOpen | redb::Error::LockProtocolMismatch => OpenFailure::InUse,
        redb::Error::Corrupted(why) => OpenFailure::Damaged(why),
        redb::Error::UpgradeRequired(version) => {
            OpenFailure::Damaged(format!("written in an unknown file format {version}"))
        }
        redb::Error::TableTypeMismatch { .. } | redb::Error::TableIsMultimap(_) => {
            OpenFailure::Damaged(error.to_string())
        }
        redb::Error::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            OpenFailure::Damaged(e.to_string())
        }
        other => OpenFailure::Io(other.to_string()),
    }
}

/// Renames a damaged cache file aside; returns its new name.
fn set_aside(path: &Path) -> Result<PathBuf, CacheOpenError> {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".damaged-{stamp}"));
    let aside = PathBuf::from(aside);
    std::fs::rename(path, &aside).map_err(|e| {
        CacheOpenError::Io(
            path.to_path_buf(),
            format!("it is damaged and could not be moved aside: {e}"),
        )
    })?;
    Ok(aside)
}

/// The writer thread: commits answers in batches until every sender is gone.
fn write_loop(
    db: &Database,
    pending: &Pending,
    backlog: &Backlog,
    receiver: &Receiver<Message>,
    path: &Path,
) {
    let mut warned = false;
    loop {
        let Ok(first) = receiver.recv() else {
            return;
        };
        let mut batch = Vec::new();
        let mut flushes = Vec::new();
        let take = |message, batch: &mut Vec<_>, flushes: &mut Vec<_>| match message {
            Message::Put(key, bytes) => batch.push((key, bytes)),
            Message::Flush(done) => flushes.push(done),
        };
        take(first, &mut batch, &mut flushes);
        let deadline = Instant::now() + FLUSH_EVERY;
        let mut closed = false;
        while batch.len() < FLUSH_BATCH && flushes.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(left) {
                Ok(message) => take(message, &mut batch, &mut flushes),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        // Answers that queued up while the last transaction committed (a packed answer
        // brings many at once) go in this one too, up to the bound.
        while batch.len() < FLUSH_BATCH && flushes.is_empty() {
            match receiver.try_recv() {
                Ok(message) => take(message, &mut batch, &mut flushes),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            if let Err(why) = commit(db, &batch)
                && !warned
            {
                warned = true;
                tracing::warn!(
                    "cannot write to the response cache {}: {why}; answers are not being kept",
                    path.display()
                );
            }
            let mut pending = pending.lock().unwrap_or_else(|p| p.into_inner());
            for (key, bytes) in &batch {
                if pending.get(key).is_some_and(|b| Arc::ptr_eq(b, bytes)) {
                    pending.remove(key);
                }
            }
            drop(pending);
            backlog.release(batch.len());
        }
        for done in flushes {
            let _ = done.send(());
        }
        if closed {
            return;
        }
    }
}

fn commit(db: &Database, batch: &[(CacheKey, Arc<Vec<u8>>)]) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut table = txn.open_table(ANSWERS)?;
        for (key, bytes) in batch {
            table.insert(key.as_bytes().as_slice(), bytes.as_slice())?;
        }
    }
    txn.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::TokenUsage;

    fn answer(text: &str) -> ChatAnswer {
        ChatAnswer {
            content: text.to_string(),
            usage: Some(TokenUsage {
                prompt_tokens: 3,
                completion_tokens: 1,
            }),
        }
    }

    #[test]
    fn answers_survive_reopening_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let key = CacheKey::new("u", "m", "b");
        {
            let cache = ResponseCache::open(&dir.path().join(CACHE_FILE)).unwrap();
            assert_eq!(cache.get(&key, None), None);
            cache.put(key, &answer("positive"));
            assert_eq!(cache.get(&key, None), Some(answer("positive")), "pending");
        }
        let cache = ResponseCache::open(&dir.path().join(CACHE_FILE)).unwrap();
        assert_eq!(cache.get(&key, None), Some(answer("positive")));
        assert_eq!(
            cache.get(&key, Some(Duration::from_secs(60))),
            Some(answer("positive"))
        );
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(cache.get(&key, Some(Duration::from_millis(5))), None);
    }

    #[test]
    fn a_second_handle_is_refused_and_shared_handles_are_one() {
        let dir = tempfile::tempdir().unwrap();
        let first = ResponseCache::shared(dir.path()).unwrap();
        let again = ResponseCache::shared(dir.path()).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        let err = ResponseCache::open(first.path()).unwrap_err();
        assert!(matches!(err, CacheOpenError::InUse(_)), "{err}");
        assert!(err.to_string().contains(CACHE_FILE), "{err}");
    }

    #[test]
    fn answers_received_but_not_committed_never_exceed_the_bound() {
        use std::sync::atomic::{AtomicU64, Ordering};

        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(ResponseCache::open(&dir.path().join(CACHE_FILE)).unwrap());
        let stored = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let cache = Arc::clone(&cache);
                let stored = Arc::clone(&stored);
                std::thread::spawn(move || {
                    for i in 0..1_500 {
                        let key = CacheKey::new("u", "m", &format!("{t}-{i}"));
                        cache.put(key, &answer("positive"));
                        stored.fetch_add(1, Ordering::SeqCst);
                        // What a kill now would lose: stored, but not in the file.
                        let stored = stored.load(Ordering::SeqCst);
                        let committed = cache.committed();
                        assert!(
                            stored <= committed + FLUSH_BATCH as u64,
                            "{stored} answers stored, only {committed} committed"
                        );
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(
            cache.high_water() <= FLUSH_BATCH,
            "at most {FLUSH_BATCH} uncommitted, saw {}",
            cache.high_water()
        );
        cache.flush();
        assert_eq!(cache.committed(), 6_000);
    }

    #[test]
    fn a_damaged_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CACHE_FILE);
        std::fs::write(&path, vec![0x5a; 100_000]).unwrap();
        let cache = ResponseCache::open(&path).unwrap();
        let key = CacheKey::new("u", "m", "b");
        cache.put(key, &answer("x"));
        cache.flush();
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names
                .iter()
                .any(|n| n.starts_with("responses.redb.damaged-")),
            "{names:?}"
        );
    }
}
