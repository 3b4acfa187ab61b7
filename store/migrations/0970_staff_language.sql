-- The staff language a person chose for the TUI (issue 16): 'pl' or 'en'; NULL = follow CIM_STAFF_LANG,
-- else Polish (store/i18n.py). Set by the person on the My account screen (store.accounts.set_own_language).
ALTER TABLE staff ADD COLUMN staff_lang TEXT CHECK (staff_lang IS NULL OR staff_lang IN ('pl', 'en'));
