"""What a study is about: its models and the sizes of its data set (:class:`StudyShape`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StudyShape:
    """What the planner needs to know about the study: models and data set sizes."""

    models: list[str]
    data_shape: tuple[int, int]
    train_images: int
    test_images: int
    native: bool = False  # train at the data's resolution on crops (volume data)
    volume_slices: int = 0  # axial slices of the test volumes (judged whole after training)
    plane_slices: int = 0  # their slices along all three axes
    volume_voxels: int = 0
    planes: int = 1  # 3: the training data holds slices along three planes (import --planes 3)
    data: str | None = None  # the data set's folder (the calibration measures on its test data)


def study_shape(dataset, models: list[str]) -> StudyShape:
    """What the planner needs to know about ``dataset`` (a :class:`Dataset`) for ``models``;
    data imported with slices along three planes (``--planes 3``) gets three-plane
    translation of the test volumes."""
    planes = dataset.planes
    slices, plane_slices, voxels = _test_volume_size(dataset)
    return StudyShape(
        models,
        tuple(dataset.shape),
        len(dataset.split("train")),
        len(dataset.split("test")),
        native=dataset.has_volumes(),
        volume_slices=slices,
        plane_slices=plane_slices if planes == 3 else 0,
        volume_voxels=voxels,
        planes=planes,
        data=str(dataset.root),
    )


def _test_volume_size(dataset) -> tuple[int, int, int]:
    """Axial slices, slices along all three axes and voxels of the test volumes (from their
    headers), for the plan's estimate of the whole-volume judgement; zeros for data without
    source volumes."""
    import nibabel as nib

    if not dataset.has_volumes():
        return 0, 0, 0
    slices = plane_slices = voxels = 0
    for source in dataset.volume_sources("test"):
        try:
            shape = nib.load(str(source.t1w)).shape[:3]
        except (OSError, ValueError):
            continue  # the evaluation itself names an unreadable volume
        slices += int(shape[2])
        plane_slices += int(sum(shape))
        voxels += int(shape[0] * shape[1] * shape[2])
    return slices, plane_slices, voxels
