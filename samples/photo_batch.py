"""A parent fans out to one child run per photo, side by side, and gathers what they made.

    wfrun start samples/photo_batch.py:PhotoBatch --input '{"photos": ["cat.jpg", "dog.jpg"]}'
    wfrun list                       # the batch, and one run per photo naming it as parent

Each child is a run of its own, with its own history: a crash halfway resumes the batch, which
does not redo the photos already finished and carries on the others where they stood.
"""

import asyncio

import wfrun as workflows


@workflows.activity
async def resize(photo: str, width: int) -> str:
    return f"{photo.removesuffix('.jpg')}-{width}.jpg"


@workflows.activity
async def publish(photo: str, sizes: list[str]) -> str:
    return f"{photo}: {', '.join(sizes)}"


@workflows.workflow.define(name="photo")
class Photo:
    """One photo: three sizes, made side by side, then published."""

    @workflows.workflow.entrypoint
    async def run(self, photo: str) -> str:
        sizes = await asyncio.gather(*(resize(photo, width) for width in (320, 640, 1280)))
        return await publish(photo, list(sizes))


@workflows.workflow.define(name="photo_batch")
class PhotoBatch:
    @workflows.workflow.entrypoint
    async def run(self, photos: list[str]) -> list[str]:
        children = (
            workflows.workflow.execute_workflow(Photo, {"photo": photo}) for photo in photos
        )
        return list(await asyncio.gather(*children))
