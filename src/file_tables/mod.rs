//! Tables named by a path in a query (`SELECT ... FROM 'data/reviews.csv'`): which names
//! are paths, how they are opened, and the errors that say what is wrong with a file.
//!
//! DataFusion's `enable_url_table()` treats every unknown table name as a path, so a
//! table named `data` reads a `data/` folder of the working directory. Here only names
//! that look like paths or URLs are ([`looks_like_path`]); every other name is a table
//! of the catalog, found or not found, exactly as in plain DataFusion.

mod catalog;
mod csv_quotes;
mod directory;
mod factory;
mod path_name;

pub use catalog::FileTableCatalogList;
pub use csv_quotes::{QuoteScan, scan_csv_quotes};
pub use directory::directory_extensions;
pub use factory::FileTables;
pub use path_name::looks_like_path;
