import re
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
VERSION = re.search(r'^__version__ = "([^"]+)"', (HERE / "zdd.py").read_text(), re.M).group(1)

setup(
    name="zdd",
    version=VERSION,
    description="Zero-downtime blue/green deployments of Marathon apps behind marathon-lb",
    long_description=(HERE / "README.rst").read_text(),
    long_description_content_type="text/x-rst",
    license="Apache-2.0",
    py_modules=["zdd"],
    python_requires=">=3.9",
    install_requires=["requests>=2.20", "python-dateutil>=2.7"],
    extras_require={
        "dcos": ["PyJWT[crypto]>=2"],
        "test": ["pytest>=7", "pytest-xdist>=3", "PyJWT[crypto]>=2", "docutils>=0.16"],
    },
    entry_points={"console_scripts": ["zdd = zdd:main"]},
    classifiers=[
        "Environment :: Console",
        "Intended Audience :: System Administrators",
        "License :: OSI Approved :: Apache Software License",
        "Programming Language :: Python :: 3",
        "Topic :: System :: Systems Administration",
    ],
)
