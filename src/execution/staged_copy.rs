//! `COPY ... TO` a local path written all or nothing: the statement writes to a
//! temporary file (or directory) next to the target, and only once every row is
//! written is it moved into place. A COPY that fails part-way (a row failing with
//! `on_error = 'fail'`, a division by zero, a budget, a cancelled statement) leaves
//! neither a partial nor an empty file, and a target that existed stays as it was.
//!
//! ```sql
//! COPY (SELECT id, sentiment(text) AS s FROM 'data/reviews.csv') TO 'out/reviews.parquet';
//! -- written to out/.reviews.parquet.partial-<pid>-<n>.parquet, renamed when complete
//! COPY (SELECT * FROM t) TO 'out/scored/' STORED AS PARQUET;
//! -- files written to out/.scored.partial-<pid>-<n>/, moved into out/scored/ when complete
//! ```
//!
//! DataFusion's own file sink commits every file it opened when its input ends, even
//! when the input ended with an error, so this is done around it: the logical `COPY` is
//! planned to the temporary path, and [`StagedCopyExec`] above the sink commits the
//! temporary output when the sink has finished without error, or removes it otherwise
//! (also when the statement is dropped before it finished). Targets that are not local
//! paths (object stores) are written as DataFusion writes them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::datasource::physical_plan::FileOutputMode;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::logical_expr::dml::CopyTo;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, ReplaceChildrenOptions,
};
use futures::{StreamExt, TryStreamExt};

/// Numbers the temporary outputs of this process.
static NEXT_STAGE: AtomicU64 = AtomicU64::new(0);

/// Where a COPY writes first, and where its output goes when complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staging {
    /// The temporary file or directory, absolute.
    temp: PathBuf,
    /// The target the statement names, absolute.
    target: PathBuf,
    /// Whether the output is a directory of files (partitioned or not).
    directory: bool,
}

/// `plan` with a top-level `COPY` to a local path redirected to a temporary path next
/// to it, and the staging that moves the output into place; `plan` unchanged and `None`
/// for any other plan.
pub fn stage(plan: LogicalPlan) -> Result<(LogicalPlan, Option<Staging>)> {
    let LogicalPlan::Copy(copy) = plan else {
        return Ok((plan, None));
    };
    let Some(staging) = staging_for(&copy)? else {
        return Ok((LogicalPlan::Copy(copy), None));
    };
    let mut temp_url = path_text(&staging.temp)?.to_string();
    if staging.directory {
        temp_url.push('/');
    }
    let staged = CopyTo {
        output_url: temp_url,
        ..copy
    };
    Ok((LogicalPlan::Copy(staged), Some(staging)))
}

/// The staging of a COPY to a local path (`None` for other targets, and for paths with
/// glob characters, which DataFusion reads as patterns).
fn staging_for(copy: &CopyTo) -> Result<Option<Staging>> {
    let url = ListingTableUrl::parse(&copy.output_url)?;
    if url.scheme() != "file" || url.get_glob().is_some() {
        return Ok(None);
    }
    let Ok(target) = url.get_url().to_file_path() else {
        return Ok(None);
    };
    let mode = match copy.options.get("single_file_output").map(|v| v.trim()) {
        Some("true") => FileOutputMode::SingleFile,
        Some("false") => FileOutputMode::Directory,
        // DataFusion refuses anything else itself.
        _ => FileOutputMode::Automatic,
    };
    let directory = !copy.partition_by.is_empty() || !mode.single_file_output(&url);
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return Ok(None);
    };
    let stage = NEXT_STAGE.fetch_add(1, Ordering::Relaxed);
    let mut temp_name = format!(
        ".{}.partial-{}-{stage}",
        name.to_string_lossy(),
        std::process::id()
    );
    // The same extension keeps DataFusion writing one file where it would have.
    if !directory && let Some(extension) = url.file_extension() {
        temp_name.push('.');
        temp_name.push_str(extension);
    }
    Ok(Some(Staging {
        temp: dir.join(temp_name),
        target,
        directory,
    }))
}

fn path_text(path: &Path) -> Result<&str> {
    path.to_str().ok_or_else(|| {
        DataFusionError::Plan(format!(
            "the COPY target {} is not valid UTF-8",
            path.display()
        ))
    })
}

impl Staging {
    /// Moves the complete output into place: the file over the target, or each file of
    /// the directory into the target directory (made if missing), keeping subdirectories.
    fn commit(&self) -> Result<()> {
        let failed = |what: &str, path: &Path, e: std::io::Error| {
            DataFusionError::Execution(format!(
                "COPY finished, but {what} {}: {e}; the complete output is kept at {}",
                path.display(),
                self.temp.display()
            ))
        };
        if !self.directory {
            return std::fs::rename(&self.temp, &self.target)
                .map_err(|e| failed("could not be moved to", &self.target, e));
        }
        if !self.temp.exists() {
            // No rows and no partitions: DataFusion wrote no file.
            return Ok(());
        }
        move_tree(&self.temp, &self.target)
            .map_err(|e| failed("its files could not all be moved into", &self.target, e))?;
        std::fs::remove_dir_all(&self.temp).map_err(|e| {
            failed(
                "the temporary directory could not be removed:",
                &self.temp,
                e,
            )
        })
    }

    /// Removes whatever the statement wrote: the temporary file (and the object store's
    /// staging files next to it, `<temp>#<n>`) or the temporary directory.
    fn discard(&self) {
        if self.directory {
            let _ = std::fs::remove_dir_all(&self.temp);
            return;
        }
        remove_with_staging_files(&self.temp);
    }
}

/// Moves every file under `from` to the same place under `to`.
fn move_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let destination = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            move_tree(&entry.path(), &destination)?;
        } else {
            std::fs::rename(entry.path(), &destination)?;
        }
    }
    Ok(())
}

/// Until committed, removes the temporary output when dropped.
struct Pending {
    staging: Staging,
    committed: bool,
}

impl Pending {
    /// Moves the output into place. Whether or not that worked, the output is complete
    /// and is kept (a failed move says where it is).
    fn commit(&mut self) -> Result<()> {
        self.committed = true;
        self.staging.commit()
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.committed {
            self.staging.discard();
        }
    }
}

/// Runs a COPY's sink and moves its output into place once the sink has finished
/// without error; removes it otherwise.
///
/// ```sql
/// EXPLAIN COPY (SELECT 1 AS x) TO 'out/x.csv';
/// -- BlossomStagedCopyExec: target=.../out/x.csv
/// --   DataSinkExec: sink=CsvSink(file_groups=[])
/// ```
#[derive(Debug)]
pub struct StagedCopyExec {
    input: Arc<dyn ExecutionPlan>,
    staging: Staging,
}

impl StagedCopyExec {
    /// Wraps the sink `input`, which writes to `staging`'s temporary path.
    pub fn new(input: Arc<dyn ExecutionPlan>, staging: Staging) -> Self {
        Self { input, staging }
    }
}

impl DisplayAs for StagedCopyExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => write!(
                f,
                "BlossomStagedCopyExec: target={}",
                self.staging.target.display()
            ),
            DisplayFormatType::TreeRender => {
                writeln!(f, "target={}", self.staging.target.display())
            }
        }
    }
}

impl ExecutionPlan for StagedCopyExec {
    fn name(&self) -> &str {
        "BlossomStagedCopyExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        datafusion::common::assert_eq_or_internal_err!(
            children.len(),
            1,
            "BlossomStagedCopyExec takes one child"
        );
        Ok(Arc::new(Self::new(
            children.swap_remove(0),
            self.staging.clone(),
        )))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(datafusion::physical_plan::ChildrenPropertiesMode::Keep),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let schema = self.input.schema();
        let mut pending = Pending {
            staging: self.staging.clone(),
            committed: false,
        };
        let mut input = self.input.execute(partition, context)?;
        // The sink answers one row (the count) after it wrote everything; it is passed
        // on only once the output is in place.
        let done = async move {
            let mut answer = Vec::new();
            while let Some(batch) = input.next().await {
                answer.push(batch?);
            }
            pending.commit()?;
            Ok::<_, DataFusionError>(futures::stream::iter(answer.into_iter().map(Ok)))
        };
        let stream = futures::stream::once(done).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// Removes the file `path` and the object store's staging files next to it
/// (`<path>#<n>`), ignoring what is already gone.
pub(crate) fn remove_with_staging_files(path: &std::path::Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let name = name.to_string_lossy();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(name.as_ref())
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_commit_keeps_the_output_and_says_where() {
        let dir = tempfile::tempdir().expect("tempdir");
        let staging = Staging {
            temp: dir.path().join(".x.csv.partial-1-0.csv"),
            target: dir.path().join("missing-dir").join("x.csv"),
            directory: false,
        };
        std::fs::write(&staging.temp, "a\n1\n").expect("write");
        let error = staging.commit().expect_err("no such directory");
        assert!(
            error.to_string().contains(".x.csv.partial-1-0.csv"),
            "{error}"
        );
        assert!(staging.temp.exists());
    }

    #[test]
    fn directories_are_merged_into_the_target() {
        let dir = tempfile::tempdir().expect("tempdir");
        let staging = Staging {
            temp: dir.path().join(".out.partial-1-0"),
            target: dir.path().join("out"),
            directory: true,
        };
        std::fs::create_dir_all(staging.temp.join("p=1")).expect("mkdir");
        std::fs::write(staging.temp.join("p=1").join("a.csv"), "x").expect("write");
        std::fs::create_dir_all(staging.target.join("p=1")).expect("mkdir");
        std::fs::write(staging.target.join("p=1").join("old.csv"), "y").expect("write");
        staging.commit().expect("commit");
        assert!(staging.target.join("p=1").join("a.csv").is_file());
        assert!(staging.target.join("p=1").join("old.csv").is_file());
        assert!(!staging.temp.exists());
    }
}
