//! Reads a Parquet file that sits at a byte range of an object: a whole
//! data file (offset 0), or a chunk of an intake object (see
//! [`crate::intake`]). Every range the Parquet reader asks for is shifted
//! by the chunk's offset, so reads stay ranged requests on the one object,
//! or slices of it when the broker has the whole object in memory.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use crate::intake::split_chunk;

/// What the footer read fetches at once: most footers fit.
const FOOTER_PREFETCH: usize = 64 * 1024;

/// A Parquet file at `[offset, offset + len)` of an object.
pub struct RangeReader {
    store: Arc<dyn ObjectStore>,
    object: Path,
    offset: u64,
    len: u64,
    /// The whole object, when in memory: ranges are sliced from it.
    in_memory: Option<Bytes>,
}

impl RangeReader {
    /// The file named `path` (a chunk path or a whole file's), `len` bytes.
    pub fn new(store: Arc<dyn ObjectStore>, path: &str, len: u64) -> Self {
        let (object, offset) = split_chunk(path);
        RangeReader {
            store,
            object: Path::from(object),
            offset,
            len,
            in_memory: None,
        }
    }

    /// Serves every range from `object`, the whole object in memory.
    pub fn in_memory(mut self, object: Bytes) -> Self {
        self.in_memory = Some(object);
        self
    }

    /// The bytes of `range` of the object (already shifted).
    async fn object_range(&self, range: Range<u64>) -> Result<Bytes> {
        match &self.in_memory {
            Some(object) if range.end <= object.len() as u64 => {
                Ok(object.slice(range.start as usize..range.end as usize))
            }
            _ => Ok(self.store.get_range(&self.object, range).await?),
        }
    }

    fn shift(&self, range: &Range<u64>) -> Result<Range<u64>> {
        if range.end > self.len || range.start > range.end {
            return Err(ParquetError::General(format!(
                "range {range:?} outside a file of {} bytes",
                self.len
            )));
        }
        Ok(self.offset + range.start..self.offset + range.end)
    }
}

impl AsyncFileReader for RangeReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, Result<Bytes>> {
        async move {
            let range = self.shift(&range)?;
            self.object_range(range).await
        }
        .boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, Result<Vec<Bytes>>> {
        async move {
            let shifted = ranges
                .iter()
                .map(|r| self.shift(r))
                .collect::<Result<Vec<_>>>()?;
            if self.in_memory.is_none() {
                return Ok(self.store.get_ranges(&self.object, &shifted).await?);
            }
            let mut out = Vec::with_capacity(shifted.len());
            for range in shifted {
                out.push(self.object_range(range).await?);
            }
            Ok(out)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, Result<Arc<ParquetMetaData>>> {
        async move {
            let mut reader = ParquetMetaDataReader::new().with_prefetch_hint(Some(FOOTER_PREFETCH));
            if let Some(o) = options {
                reader = reader
                    .with_column_index_policy(o.column_index_policy())
                    .with_offset_index_policy(o.offset_index_policy());
            }
            let len = self.len;
            Ok(Arc::new(reader.load_and_finish(self, len).await?))
        }
        .boxed()
    }
}
