"""The package as a package: version in step with the Rust crates, typed,
Python 3.9 syntax, installable with pip, and a ten-line script that talks to
`lhp serve` from the installed copy."""

import ast
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

import support
from support import Server, rust_binary
import lhp


def cargo_version():
    with open(os.path.join(support.REPO, "Cargo.toml"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("[workspace.package]", 1)[1].split("\n[", 1)[0]
    return re.search(r'^version\s*=\s*"([^"]+)"', section, re.M).group(1)


def pyproject_version():
    with open(os.path.join(support.PYTHON_DIR, "pyproject.toml"), encoding="utf-8") as f:
        return re.search(r'^version\s*=\s*"([^"]+)"', f.read(), re.M).group(1)


class PackageTests(unittest.TestCase):
    def test_version_is_the_rust_crates_version(self):
        self.assertEqual(pyproject_version(), cargo_version())
        self.assertEqual(lhp.__version__, cargo_version())

    def test_typed_marker_and_no_runtime_dependencies(self):
        self.assertTrue(os.path.isfile(os.path.join(support.SRC, "lhp", "py.typed")))
        with open(os.path.join(support.PYTHON_DIR, "pyproject.toml"), encoding="utf-8") as f:
            self.assertRegex(f.read(), r"(?m)^dependencies = \[\]$")

    def test_sources_are_python_3_9_syntax(self):
        files = glob.glob(os.path.join(support.SRC, "lhp", "*.py")) + \
            glob.glob(os.path.join(support.EXAMPLES, "*.py"))
        self.assertGreater(len(files), 8)
        for path in files:
            with open(path, encoding="utf-8") as f:
                ast.parse(f.read(), path, feature_version=(3, 9))

    def test_the_package_type_checks(self):
        try:
            import mypy  # noqa: F401
        except ImportError:
            support.skip_loudly(self, "mypy is not installed (pip install mypy)")
        r = subprocess.run([sys.executable, "-m", "mypy", "--python-version", "3.10",
                            "--cache-dir", os.devnull, os.path.join(support.SRC, "lhp")],
                           capture_output=True, text=True, timeout=600)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_pip_install_then_a_ten_line_script_talks_to_lhp_serve(self):
        lhp_bin = rust_binary("lhp")
        if lhp_bin is None:
            support.skip_loudly(self, "the lhp binary is not built (cargo build -p lhp)")
        with tempfile.TemporaryDirectory(prefix="lhp-pip-") as tmp:
            target = os.path.join(tmp, "site")
            # First with the setuptools and wheel already installed (works offline);
            # if they are missing, with pip's isolated build (fetches them).
            # from a copy, so that the build's by-products (build/, *.egg-info) stay out of
            # the checkout
            src = os.path.join(tmp, "python")
            shutil.copytree(support.PYTHON_DIR, src, ignore=shutil.ignore_patterns(
                "__pycache__", "build", "*.egg-info"))
            pip = [sys.executable, "-m", "pip", "install", "--quiet", "--target", target, src]
            r = subprocess.run(pip + ["--no-build-isolation"], capture_output=True,
                               text=True, timeout=300)
            if r.returncode != 0 and "No module named pip" in r.stderr:
                support.skip_loudly(self, "pip is not available")
            if r.returncode != 0:
                r = subprocess.run(pip, capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(os.path.isfile(os.path.join(target, "lhp", "py.typed")))
            script = textwrap.dedent("""\
                import socket, sys
                import lhp
                from lhp import send_frame, recv_frame
                assert lhp.__file__.startswith(sys.argv[2]), lhp.__file__
                host, port = sys.argv[1].rsplit(":", 1)
                with socket.create_connection((host, int(port))) as sock:
                    send_frame(sock, {"kind": "echo", "id": 1}, b"hello")
                    header, body = recv_frame(sock)
                print(header["kind"], header["id"], bytes(body).decode())
                """)
            with Server([lhp_bin, "serve", "--addr", "127.0.0.1:0"]) as srv:
                # PYTHONPATH: only the installed copy; cwd: not the checkout
                env = dict(os.environ, PYTHONPATH=target)
                r = subprocess.run([sys.executable, "-c", script, srv.addr, target],
                                   capture_output=True, text=True, timeout=60, env=env,
                                   cwd=tmp)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, "echo 1 hello\n")


if __name__ == "__main__":
    unittest.main()
