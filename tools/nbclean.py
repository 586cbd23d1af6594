"""Clean the notebooks so that JupyterLab opens them unmodified: `nbdev-clean`, then the kernel metadata JupyterLab
writes when a kernel starts.

    .venv/bin/python tools/nbclean.py            # every notebook in nbs/ (what CI checks)
    .venv/bin/python tools/nbclean.py NB [NB...]

nbdev-clean sets `kernelspec.display_name` to the kernel's name ("python3"), and JupyterLab then writes the kernel's
real display name ("Python 3 (ipykernel)") and its `language_info` into the notebook the moment it opens it, which
marks the notebook modified before the user did anything. Storing exactly what the kernel reports (`language_info`
is kept by nbdev-clean through `allowed_metadata_keys` in pyproject.toml) makes opening a no-op. The values come
from the installed ipykernel and the `python3` kernel spec, so they match the kernel JupyterLab starts here.
"""
import subprocess
import sys
from pathlib import Path

from fastcore.nbio import read_nb, write_nb

ROOT = Path(__file__).resolve().parents[1]


def kernel_metadata() -> dict:
    "The `kernelspec` and `language_info` that JupyterLab stores for the installed `python3` kernel."
    from ipykernel.ipkernel import IPythonKernel
    from jupyter_client.kernelspec import KernelSpecManager
    spec = KernelSpecManager().get_kernel_spec("python3")
    return {"kernelspec": {"display_name": spec.display_name, "language": spec.language, "name": "python3"},
            "language_info": dict(IPythonKernel.language_info)}


def set_kernel_metadata(path: Path, meta: dict) -> bool:
    "Write `meta` into the notebook's metadata; True when the file changed."
    nb = read_nb(path)
    new = {**nb.get("metadata", {}), **meta}
    if nb.get("metadata") == new:
        return False
    nb["metadata"] = new
    write_nb(nb, path)
    return True


def main(argv=None) -> int:
    paths = [Path(p) for p in (argv if argv is not None else sys.argv[1:])] or sorted((ROOT / "nbs").glob("*.ipynb"))
    clean = str(Path(sys.executable).parent / "nbdev-clean")
    if argv or sys.argv[1:]:
        for p in paths:
            subprocess.run([clean, "--fname", str(p)], check=True, cwd=ROOT)
    else:                                   # all of nbs/ in one call
        subprocess.run([clean], check=True, cwd=ROOT)
    meta = kernel_metadata()
    changed = [p.name for p in paths if set_kernel_metadata(p, meta)]
    print(f"cleaned {len(paths)} notebook(s) and set their kernel metadata ({len(changed)} differed from nbdev-clean's)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
