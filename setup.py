"""The package's one compiled part: the n-gram query loop (src/seqlm/models/ngram/fastquery.pyx), built by
``pip install`` with Cython (a build requirement in pyproject.toml).  It is optional: where it cannot be
built (no C compiler), the install goes on and seqlm answers from the Python reference, slower, with one
warning.  Everything else is configured in pyproject.toml."""

from setuptools import Extension, setup

try:
    from Cython.Build import cythonize
except ImportError:  # building without Cython: the Python reference only
    extensions = []
else:
    extensions = cythonize([Extension("seqlm.models.ngram.fastquery", ["src/seqlm/models/ngram/fastquery.pyx"],
                                      extra_compile_args=["-O3"], optional=True)],
                           compiler_directives={"language_level": "3"}, quiet=True)

setup(ext_modules=extensions)
