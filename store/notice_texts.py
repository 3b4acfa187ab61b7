"""Version 1 of the notices: the ordinance's texts verbatim (§1.4 phone, §1.5 chat) and English translations."""

PHONE_PL = (
    "Witamy w Centrum Informacji Mieszkańców Urzędu Miasta Szczecin. Informujemy, "
    "że w trosce o zapewnienie najwyższej jakości usług, wszystkie rozmowy są nagrywane. "
    "Jeżeli nie wyrażacie Państwo zgody na ich nagrywanie prosimy o przerwanie połączenia. "
    "Administrator danych tj. Gmina Miasto Szczecin – Urząd Miasta Szczecin pl. Armii Krajowej 1 "
    "Szczecin, zobowiązana jest wypełnić obowiązek informacyjny z art. 13, 14 i 15 ogólnego "
    "rozporządzenia o ochronie danych (RODO). Pełną informację, w tym informację o swoich prawach "
    "znajdziecie Państwo w Biuletynie Informacji Publicznej Urzędu Miasta Szczecin na stronie "
    "bip.um.szczecin.pl w zakładce Ochrona Danych Osobowych/RODO. Jeżeli chcą Państwo wysłuchać "
    "pełną informację proszę wcisnąć 1. Jeżeli nie, to proszę poczekać na połączenie z konsultantem."
)

CHAT_PL = (
    "Kontakt z Urzędem Miasta Szczecin za pośrednictwem usługi czat wiąże się z przetwarzaniem "
    "przez Urząd podanych danych osobowych. Jeżeli nie wyrażacie Państwo zgody na przetwarzanie "
    "danych osobowych prosimy o przerwanie korzystania z usługi czat. Administrator danych tj. "
    "Gmina Miasto Szczecin Urząd Miasta Szczecin pl. Armii Krajowej 1 Szczecin, zobowiązana jest "
    "wypełnić obowiązek informacyjny z art. 13, 14 i 15 ogólnego rozporządzenia o ochronie danych "
    "(RODO). Pełną informację, w tym informację o swoich prawach znajdziecie Państwo na stronie "
    "bip.um.szczecin.pl w zakładce Ochrona Danych Osobowych/RODO."
)

CHAT_EN = (
    "Contacting the City Hall of Szczecin through the chat service involves the processing of the "
    "personal data you provide by the City Hall. If you do not consent to the processing of personal "
    "data, please stop using the chat service. The data controller, i.e. the Municipality of the City "
    "of Szczecin, City Hall of Szczecin, pl. Armii Krajowej 1, Szczecin, is obliged to fulfil the "
    "information obligation under Articles 13, 14 and 15 of the General Data Protection Regulation "
    "(GDPR). Full information, including information about your rights, can be found at "
    "bip.um.szczecin.pl under Personal Data Protection/GDPR. (Translation; the Polish text is the "
    "legally binding one.)"
)

PHONE_EN = (
    "Welcome to the Resident Information Centre of the City Hall of Szczecin. To ensure the highest "
    "quality of service, all calls are recorded. If you do not consent to the recording, please hang "
    "up. The data controller, i.e. the Municipality of the City of Szczecin, City Hall of Szczecin, "
    "pl. Armii Krajowej 1, Szczecin, is obliged to fulfil the information obligation under Articles "
    "13, 14 and 15 of the GDPR. Full information, including your rights, is in the Public Information "
    "Bulletin at bip.um.szczecin.pl under Personal Data Protection/GDPR. To hear the full information, "
    "press 1. Otherwise, please wait for a consultant."
)
