//! [`FileTableCatalogList`]: the session's catalogs, in which a table name that looks
//! like a path resolves to the file when no table has that name.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, CatalogProviderList, SchemaProvider, TableProvider};
use datafusion::common::Result;
use datafusion::logical_expr::TableType;

use super::FileTables;

/// Wraps a session's catalog list so that `SELECT ... FROM 'data/reviews.csv'` reads the
/// file. Unlike DataFusion's `DynamicFileCatalog`, only names that look like paths are
/// tried as files (see [`super::looks_like_path`]), and every catalog and schema
/// operation (`DROP SCHEMA` included) reaches the wrapped catalogs unchanged.
#[derive(Debug)]
pub struct FileTableCatalogList {
    inner: Arc<dyn CatalogProviderList>,
    files: Arc<FileTables>,
}

impl FileTableCatalogList {
    /// Wraps `inner`; `files` opens the paths.
    pub fn new(inner: Arc<dyn CatalogProviderList>, files: Arc<FileTables>) -> Self {
        Self { inner, files }
    }
}

impl CatalogProviderList for FileTableCatalogList {
    fn register_catalog(
        &self,
        name: String,
        catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        self.inner.register_catalog(name, catalog)
    }

    fn catalog_names(&self) -> Vec<String> {
        self.inner.catalog_names()
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        self.inner.catalog(name).map(|inner| {
            Arc::new(FileTableCatalog {
                inner,
                files: Arc::clone(&self.files),
            }) as _
        })
    }
}

/// One catalog of a [`FileTableCatalogList`].
#[derive(Debug)]
struct FileTableCatalog {
    inner: Arc<dyn CatalogProvider>,
    files: Arc<FileTables>,
}

impl CatalogProvider for FileTableCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.inner.schema_names()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        self.inner.schema(name).map(|inner| {
            Arc::new(FileTableSchema {
                inner,
                files: Arc::clone(&self.files),
            }) as _
        })
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        self.inner.register_schema(name, schema)
    }

    fn deregister_schema(
        &self,
        name: &str,
        cascade: bool,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        self.inner.deregister_schema(name, cascade)
    }
}

/// One schema of a [`FileTableCatalog`]: its own tables first, then files.
#[derive(Debug)]
struct FileTableSchema {
    inner: Arc<dyn SchemaProvider>,
    files: Arc<FileTables>,
}

#[async_trait]
impl SchemaProvider for FileTableSchema {
    fn owner_name(&self) -> Option<&str> {
        self.inner.owner_name()
    }

    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some(table) = self.inner.table(name).await? {
            return Ok(Some(table));
        }
        self.files.open(name).await
    }

    async fn table_type(&self, name: &str) -> Result<Option<TableType>> {
        self.inner.table_type(name).await
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        self.inner.register_table(name, table)
    }

    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        self.inner.deregister_table(name)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}
