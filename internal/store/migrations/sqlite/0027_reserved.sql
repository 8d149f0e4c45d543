-- Reserved: version 27 belongs to another branch. This placeholder keeps
-- the numbering without gaps until that migration lands, and is removed
-- when it does. It changes nothing.
SELECT 1;
