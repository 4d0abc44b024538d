"""Names of the PostgreSQL-only rollup tables of active-user bitmaps (no Django model reads or writes them).

The rollup fills them (`rollup._merge_user_years`, `rollup.merge_day_users`); the report counts distinct
users from them. Their own module so both can name them without importing each other.
"""

USER_YEAR_TABLE = "catalog_usageuseryear"  # per user x year x team x tool: a bit per day of the year
USER_INDEX_TABLE = "catalog_usageuserindex"  # each user's bit position in the day bitmaps
DAY_USERS_TABLE = "catalog_usagedayusers"  # per day x tool: a bit per user
