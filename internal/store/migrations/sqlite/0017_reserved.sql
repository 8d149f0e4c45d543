-- Reserved: migration 0017 belongs to another branch, which lands it at
-- merge in place of this file. Nothing to do here.
SELECT 1;
