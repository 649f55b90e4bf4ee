"""``mrtranslate study``, the main job, in one package: the data set's shape (:mod:`.shape`),
what each stage costs (:mod:`.cost`), the measurements of those costs on this machine and data
(:mod:`.calibration`), the plan to a time budget (:mod:`.plan`), the pace while it runs
(:mod:`.pacing`) and the run itself (:mod:`.run`)."""

from mrtranslate.study.run import STUDY_FILE, StudyOptions, load_plan, run_study
from mrtranslate.study.shape import study_shape

__all__ = ["STUDY_FILE", "StudyOptions", "load_plan", "run_study", "study_shape"]
