-- keygate schema version 20: reserved for another branch's migration; delete this file when that
-- migration is merged (sources' own migration is 0030).
SELECT 1;
