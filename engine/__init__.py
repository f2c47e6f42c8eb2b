"""SQL -> plan -> execution: parse, bind, plan, execute; the database, its cache and storage."""
