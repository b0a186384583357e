"""The geoprocessing side: upload endpoint, upload store, worker and processors."""
