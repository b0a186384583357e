"""A tus client in its own process, to be killed mid-upload: ``python -m tests.support.tus_sender``.

Arguments: the API's uploads URL, the file, the URL store (tuspy's JSON
file storage), the chunk size, and a bearer token ("" for none). The
upload's URL is in the store from its creation on, for a later client to
resume from.
"""

import sys

from tusclient import client
from tusclient.storage.filestorage import FileStorage


def main(url: str, path: str, storage: str, chunk_size: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    uploader = client.TusClient(url, headers=headers).uploader(
        file_path=path, chunk_size=int(chunk_size), store_url=True,
        url_storage=FileStorage(storage), metadata={"purpose": "raw", "filename": "big.bin"})
    uploader.upload()


if __name__ == "__main__":
    main(*sys.argv[1:])
