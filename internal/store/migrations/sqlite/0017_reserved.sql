-- keygate schema version 17: held for a change from another branch; this
-- placeholder does nothing and is replaced when the branches meet.
SELECT 1;
