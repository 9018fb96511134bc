"""wangp: a headless toolkit for WanGP-style finetune model definitions.

Independent from WanGP (deepbeepmeep/Wan2GP); it reads and writes WanGP's formats.
"""

__version__ = "0.1.0"
